-- Purges: content erased from a repo's history for compliance (versioning/purge.py,
-- docs/design/purge.md). Commits and trees never change (their ids are content
-- addresses), so a purge records WHICH bodies are erased in a repo: reads of any
-- entry naming one answer ContentPurged, writes of the same body into the repo
-- are refused, and gc treats the body as unreachable from the repo, so its
-- chunks and its manifest row (small bodies live there) go once no other repo
-- holds them. Rows go with their repo; the audit log outlives it.
CREATE TABLE purged_contents (
    repo        text NOT NULL REFERENCES repos(name) ON DELETE CASCADE,
    content_id  bytea NOT NULL,
    path        text NOT NULL,     -- the path (or folder) whose purge named it first
    purged_at   bigint NOT NULL,   -- microseconds since the epoch
    reason      text NOT NULL,
    purged_by   text NOT NULL,     -- the access key that asked
    log_id      bigint NOT NULL,   -- its purge_log row
    PRIMARY KEY (repo, content_id)
);

-- The audit log: one row per purge, kept when the repo is deleted.
CREATE TABLE purge_log (
    id         bigserial PRIMARY KEY,
    repo       text NOT NULL,
    path       text NOT NULL,
    versions   integer NOT NULL,   -- history records (path, commit) that named purged bodies
    commits    integer NOT NULL,   -- distinct commits among them
    contents   integer NOT NULL,   -- distinct bodies purged
    bytes      bigint NOT NULL,    -- their plain size, each counted once
    reason     text NOT NULL,
    purged_by  text NOT NULL,
    at         bigint NOT NULL
);
CREATE INDEX purge_log_repo ON purge_log (repo, id);
