-- The datum queue stays cheap however many datums a job has.
--
-- A datum's state change is never a HOT update (state is in partial-index
-- predicates), so every leased or finished datum leaves a dead entry in the
-- open-datum indexes until VACUUM runs, and autovacuum may be late or off.
-- "Has this job any open datum?" therefore probes from the job's newest
-- datum down (open datums are the newest ones), on (job, seq); the lease
-- reads datums_pending from a floor (versioning/pipelines/jobs.py) and
-- expiry reads datums_leased from the last pass, so none of them walks the
-- dead entries of the datums already done.
DROP INDEX datums_open;
CREATE INDEX datums_open ON datums (job, seq) WHERE state IN ('pending', 'running');
