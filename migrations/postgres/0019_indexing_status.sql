-- A large file's chunks are written in batches by a background job: while they are, its file
-- is `indexing`.
ALTER TABLE upload_files DROP CONSTRAINT upload_files_status_check;
ALTER TABLE upload_files ADD CONSTRAINT upload_files_status_check
    CHECK (status IN ('queued', 'extracting', 'indexing', 'indexed', 'failed', 'duplicate'));
CREATE INDEX upload_files_by_document ON upload_files (document_id);
