-- Jobs and datums (versioning/pipelines/jobs.py, docs/design/jobs.md).
--
-- A job is one run of a pipeline version over its inputs' heads. Its datums
-- table rows are the datums it runs or reuses (an unchanged live datum needs
-- no row: planning follows the change). live_datums is what the output
-- branch's head holds, by datum location; it changes in the transaction that
-- records a job's success.
CREATE TABLE jobs (
    id            text PRIMARY KEY,             -- 32 hex digits, random
    pipeline      text NOT NULL REFERENCES pipelines(name) ON DELETE CASCADE,
    version       integer NOT NULL,
    salt          text NOT NULL,
    state         text NOT NULL
                  CHECK (state IN ('created', 'running', 'success', 'failure', 'killed')),
    created       bigint NOT NULL,              -- microseconds since the epoch
    started       bigint,
    finished      bigint,
    inputs        jsonb NOT NULL,               -- [{"name","repo","branch","commit"}]
    commit_set    text NOT NULL,
    base_job      text,                         -- the successful job it was planned from
    output_commit bytea,
    reason        text NOT NULL DEFAULT '',
    removed       jsonb NOT NULL DEFAULT '[]',  -- live datum locations whose outputs go
    stats         jsonb NOT NULL DEFAULT '{}'   -- plan counts and times
);
-- At most one active job per pipeline: this is what coalesces triggers.
CREATE UNIQUE INDEX jobs_one_active ON jobs (pipeline) WHERE state IN ('created', 'running');
CREATE INDEX jobs_by_pipeline ON jobs (pipeline, created DESC);

CREATE TABLE datums (
    job           text NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    id            text NOT NULL,                -- the datum hash (datums.datum_id)
    pipeline      text NOT NULL,
    salt          text NOT NULL,
    location      text NOT NULL,                -- datums.datum_location
    seq           bigserial,
    state         text NOT NULL CHECK (state IN
                  ('pending', 'running', 'success', 'failed', 'skipped', 'recovered', 'killed')),
    reason        text NOT NULL,
    inputs        jsonb NOT NULL,  -- [{"name","repo","branch","commit","path","s3","files":[[key, content hex, size]]}]
    tries         integer NOT NULL DEFAULT 0,
    attempt       text,                         -- the current lease
    worker        text NOT NULL DEFAULT '',
    lease_until   bigint,
    out_open      bytea,                        -- the attempt's output open commit
    in_open       jsonb NOT NULL DEFAULT '{}',  -- {input name: open commit hex} (s3 inputs)
    output_commit bytea,                        -- exactly this datum's outputs
    reused_from   text,                         -- skipped: the job that made the outputs
    error         text NOT NULL DEFAULT '',
    exit_code     integer,
    download_us   bigint NOT NULL DEFAULT 0,
    process_us    bigint NOT NULL DEFAULT 0,
    upload_us     bigint NOT NULL DEFAULT 0,
    wait_us       bigint NOT NULL DEFAULT 0,    -- queued until first leased
    queued        bigint NOT NULL,
    started       bigint,
    finished      bigint,
    PRIMARY KEY (job, id)
);
CREATE INDEX datums_pending ON datums (seq) WHERE state = 'pending';
CREATE INDEX datums_leased ON datums (lease_until) WHERE state = 'running';
-- Whether a job has datums left: checked on every scheduler tick, so it must
-- not count the job's datums.
CREATE INDEX datums_open ON datums (job) WHERE state IN ('pending', 'running');
CREATE UNIQUE INDEX datums_attempt ON datums (attempt) WHERE attempt IS NOT NULL;
CREATE INDEX datums_outcomes ON datums (pipeline, salt, id);
CREATE INDEX datums_job_seq ON datums (job, seq);
-- Subvenance: which datums read a file (containment on inputs).
CREATE INDEX datums_inputs ON datums USING gin (inputs jsonb_path_ops);

CREATE TABLE live_datums (
    pipeline      text NOT NULL REFERENCES pipelines(name) ON DELETE CASCADE,
    location      text NOT NULL,
    id            text NOT NULL,
    job           text NOT NULL,                -- whose datums row made or reused it
    outcome       text NOT NULL CHECK (outcome IN ('success', 'recovered')),
    output_commit bytea,                        -- NULL: no outputs (or recovered)
    PRIMARY KEY (pipeline, location)
);
CREATE INDEX live_recovered ON live_datums (pipeline) WHERE outcome = 'recovered';

CREATE TABLE datum_logs (
    seq        bigserial PRIMARY KEY,
    job        text NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    pipeline   text NOT NULL,
    datum      text NOT NULL,
    try        integer NOT NULL,
    worker     text NOT NULL,
    stream     text NOT NULL,                   -- stdout, stderr or loxo
    text       text NOT NULL,
    time       bigint NOT NULL
);
CREATE INDEX datum_logs_job ON datum_logs (job, seq);
CREATE INDEX datum_logs_pipeline ON datum_logs (pipeline, seq);
