-- The trash: deleted repos and branches, restorable until `expires_at`
-- (microseconds). The live rows are removed, so the names are free again at
-- once; what a restore needs is kept here.
--
-- A trashed branch is one `trash` row (kind 'branch', in repo `repo`) with
-- one `trash_refs` row: its name, head and creation time. Its commits stay
-- in the repo's commits, as they do when any branch is deleted.
--
-- A trashed repo is one `trash` row (kind 'repo') with a `trash_refs` row for
-- each of its branches and tags. Its commits are kept, renamed to the repo
-- `stash` (`_trash-<id>`, never a repo name: names start with [a-z0-9]), so a
-- new repo of the same name sees none of them; restoring renames them back.
-- Branch entries of a trashed repo move into its stash the same way.
--
-- Garbage collection treats every head in trash_refs of an unexpired entry as
-- a root, and deletes expired entries (with their stash's commits) first.
CREATE TABLE trash (
    id              bigserial PRIMARY KEY,
    kind            text NOT NULL CHECK (kind IN ('repo', 'branch')),
    repo            text NOT NULL,
    name            text NOT NULL,
    default_branch  text,
    stash           text,
    created         bigint NOT NULL,
    deleted_at      bigint NOT NULL,
    expires_at      bigint NOT NULL
);
CREATE INDEX trash_repo_name ON trash (repo, name);
CREATE INDEX trash_expires ON trash (expires_at);

CREATE TABLE trash_refs (
    trash_id  bigint NOT NULL REFERENCES trash(id) ON DELETE CASCADE,
    kind      text NOT NULL CHECK (kind IN ('branch', 'tag')),
    name      text NOT NULL,
    head      bytea,
    created   bigint NOT NULL,
    PRIMARY KEY (trash_id, kind, name)
);

-- Versions withdrawn from a trashed branch's listing (withdrawn_versions),
-- put back when it is restored.
CREATE TABLE trash_withdrawn (
    trash_id   bigint NOT NULL REFERENCES trash(id) ON DELETE CASCADE,
    branch     text NOT NULL,
    key        text NOT NULL,
    commit_id  bytea NOT NULL,
    withdrawn  bigint NOT NULL
);
CREATE INDEX trash_withdrawn_entry ON trash_withdrawn (trash_id);
