-- Repos, branches, commits, tree pages, content manifests, object versions
-- and multipart uploads. Times are microseconds since the Unix epoch.

CREATE TABLE repos (
    name            text PRIMARY KEY,
    default_branch  text NOT NULL,
    created         bigint NOT NULL
);

CREATE TABLE branches (
    repo     text NOT NULL REFERENCES repos(name) ON DELETE CASCADE,
    name     text NOT NULL,
    head     bytea,
    created  bigint NOT NULL,
    PRIMARY KEY (repo, name)
);

-- data is the commit's canonical encoding; its BLAKE3 is the id.
CREATE TABLE commits (
    id    bytea PRIMARY KEY,
    repo  text NOT NULL,
    time  bigint NOT NULL,
    data  bytea NOT NULL
);
CREATE INDEX commits_repo_time ON commits (repo, time);

-- Content-addressed prolly-tree pages, shared by every commit and repo.
CREATE TABLE tree_nodes (
    id    bytea PRIMARY KEY,
    data  bytea NOT NULL
);

-- Object bodies: the ordered chunk list, shared by identical bodies.
CREATE TABLE contents (
    id        bytea PRIMARY KEY,
    size      bigint NOT NULL,
    manifest  bytea NOT NULL
);

-- Which commit made each object write (ObjectEntry.version).
CREATE TABLE object_versions (
    version    bytea PRIMARY KEY,
    commit_id  bytea NOT NULL
);

CREATE TABLE uploads (
    id       text PRIMARY KEY,
    repo     text NOT NULL,
    branch   text NOT NULL,
    key      text NOT NULL,
    created  bigint NOT NULL,
    -- msgpack of the object attributes given at CreateMultipartUpload
    attrs    bytea NOT NULL
);
CREATE INDEX uploads_branch_key ON uploads (repo, branch, key);

CREATE TABLE upload_parts (
    upload_id    text NOT NULL REFERENCES uploads(id) ON DELETE CASCADE,
    part_number  integer NOT NULL,
    content      bytea NOT NULL,
    size         bigint NOT NULL,
    md5          bytea NOT NULL,
    created      bigint NOT NULL,
    PRIMARY KEY (upload_id, part_number)
);
