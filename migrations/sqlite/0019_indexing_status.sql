-- A large file's chunks are written in batches by a background job: while they are, its file
-- is `indexing`. SQLite cannot change a CHECK constraint in place: the table is rebuilt.
CREATE TABLE upload_files_new (
    id BLOB PRIMARY KEY,
    upload_id BLOB NOT NULL REFERENCES uploads(id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    file_name TEXT NOT NULL,
    size_bytes INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    content BLOB,
    status TEXT NOT NULL
        CHECK (status IN ('queued', 'extracting', 'indexing', 'indexed', 'failed', 'duplicate')),
    reason TEXT,
    document_id BLOB REFERENCES documents(id) ON DELETE SET NULL,
    updated_at TEXT NOT NULL
);
INSERT INTO upload_files_new (id, upload_id, position, file_name, size_bytes, sha256, content,
    status, reason, document_id, updated_at)
SELECT id, upload_id, position, file_name, size_bytes, sha256, content,
    status, reason, document_id, updated_at FROM upload_files;
DROP TABLE upload_files;
ALTER TABLE upload_files_new RENAME TO upload_files;
CREATE INDEX upload_files_by_upload ON upload_files (upload_id, position);
CREATE INDEX upload_files_by_document ON upload_files (document_id);
