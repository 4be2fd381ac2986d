-- Completed multipart uploads, kept for a while after the commit that consumed
-- them, so a retried CompleteMultipartUpload (a client whose connection dropped
-- before the answer) gets the same answer instead of NoSuchUpload, as on AWS.
-- Written by the commit statement itself; expired with idle uploads.
CREATE TABLE completed_uploads (
    id         text PRIMARY KEY,
    repo       text NOT NULL REFERENCES repos(name) ON DELETE CASCADE,
    branch     text NOT NULL,
    key        text NOT NULL,
    commit_id  bytea NOT NULL,
    completed  bigint NOT NULL
);
CREATE INDEX completed_uploads_completed ON completed_uploads (completed);
