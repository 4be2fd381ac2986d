-- Garbage collection. Every content-addressed row gets `touched`: the last time
-- (microseconds) a writer created or re-used it. gc deletes only what no root
-- reaches AND was last touched before its grace cutoff, and writers touch
-- what they re-use in the same statement that relies on it, so a row locked
-- by gc's DELETE and a writer's touch serialize on the row lock.
-- Rows from before this migration get 0: old, collectable when unreachable.
ALTER TABLE tree_nodes ADD COLUMN touched bigint NOT NULL DEFAULT 0;
ALTER TABLE contents ADD COLUMN touched bigint NOT NULL DEFAULT 0;
-- False for a body stored wholly inline in its manifest (small objects):
-- gc's chunk pass reads only the manifests that name chunks.
ALTER TABLE contents ADD COLUMN has_chunks boolean NOT NULL DEFAULT true;

-- Every chunk a writer stored or re-used, touched BEFORE the writer relies
-- on the chunk being in the store. gc deletes a chunk's row and its stored
-- object in one transaction, so a writer's touch either comes first (and the
-- chunk is kept) or waits and then finds the chunk gone (and writes it again).
CREATE TABLE chunks (
    id       bytea PRIMARY KEY,
    size     integer NOT NULL,
    touched  bigint NOT NULL
);
