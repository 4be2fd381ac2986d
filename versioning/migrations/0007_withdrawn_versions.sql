-- Versions withdrawn from a branch: S3's DeleteObject?versionId on a branch
-- bucket. History is immutable, so nothing is removed from commits; the
-- branch's version listing (and versionId reads through its bucket) skip
-- these records. Snapshots and the control API still see every commit.
-- A row names one record of the branch's history index: the commit that
-- changed `key`. Rows go with their branch.
CREATE TABLE withdrawn_versions (
    repo       text NOT NULL,
    branch     text NOT NULL,
    key        text NOT NULL,
    commit_id  bytea NOT NULL,
    withdrawn  bigint NOT NULL,
    PRIMARY KEY (repo, branch, key, commit_id),
    FOREIGN KEY (repo, branch) REFERENCES branches (repo, name) ON DELETE CASCADE
);
