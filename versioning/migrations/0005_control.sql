-- The control API's refs: tags (immutable names for commits) and open commits
-- (a staging branch, named `_open-<id hex>` in branches, whose changes become
-- ONE commit on `branch` when finished). Branch names never start with "_",
-- so staging branches cannot collide with user branches.
CREATE TABLE tags (
    repo       text NOT NULL REFERENCES repos(name) ON DELETE CASCADE,
    name       text NOT NULL,
    commit_id  bytea NOT NULL,
    created    bigint NOT NULL,
    PRIMARY KEY (repo, name)
);

CREATE TABLE open_commits (
    id          bytea PRIMARY KEY,
    repo        text NOT NULL REFERENCES repos(name) ON DELETE CASCADE,
    branch      text NOT NULL,
    base        bytea,
    created     bigint NOT NULL,
    -- aborted when nothing was written to it for this long (microseconds)
    idle_us     bigint NOT NULL,
    author      text NOT NULL,
    -- Set when finishing starts: the staging branch is deleted (so no write
    -- can land on it any more) and its last head kept here, a gc root, until
    -- the finishing commit consumes this row. A crash in between leaves a
    -- commit that `finish` completes and `abort` discards.
    frozen      bytea,
    finishing   boolean NOT NULL DEFAULT false
);
CREATE INDEX open_commits_repo ON open_commits (repo, branch);
