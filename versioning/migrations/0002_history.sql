-- Each commit's history index: a prolly tree (pages in tree_nodes) mapping
-- key + inverted generation + commit id to the entry the commit wrote for the
-- key (or a delete marker). generation = 1 + the first parent's generation.
CREATE TABLE commit_history (
    commit_id     bytea PRIMARY KEY,
    history_root  bytea,
    generation    bigint NOT NULL
);
