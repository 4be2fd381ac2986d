-- Pipelines (versioning/pipelines/service.py): a pipeline writes the repo of
-- its own name. Its spec is versioned: each update adds a row to
-- pipeline_versions and bumps current_version. The salt enters every datum
-- hash of the pipeline's jobs: a new salt (update --reprocess) makes every
-- datum new, so the next job reprocesses them all.
CREATE TABLE pipelines (
    name             text PRIMARY KEY,
    state            text NOT NULL CHECK (state IN ('running', 'stopped')),
    created          bigint NOT NULL,   -- microseconds since the epoch
    updated          bigint NOT NULL,
    current_version  integer NOT NULL,
    salt             text NOT NULL
);

CREATE TABLE pipeline_versions (
    pipeline   text NOT NULL REFERENCES pipelines(name) ON DELETE CASCADE,
    version    integer NOT NULL,
    spec       text NOT NULL,          -- the canonical JSON (spec.to_json)
    created    bigint NOT NULL,
    reprocess  boolean NOT NULL,       -- this version came with a new salt
    PRIMARY KEY (pipeline, version)
);
