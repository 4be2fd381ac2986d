-- Multipart checksums: the algorithm and type an upload was created with
-- (x-amz-checksum-algorithm / x-amz-checksum-type of CreateMultipartUpload),
-- and each part's checksums (msgpack of [algorithm, base64] pairs).
ALTER TABLE uploads ADD COLUMN checksum_algorithm text;
ALTER TABLE uploads ADD COLUMN checksum_type text;
ALTER TABLE upload_parts ADD COLUMN checksums bytea;
