-- Bulk uploads: each file is kept until processed, and durable jobs do the processing
-- (claimed with FOR UPDATE SKIP LOCKED on PostgreSQL; a lease lets another worker resume a
-- job whose worker died).

CREATE TABLE uploads (
    id BLOB PRIMARY KEY,
    workspace_id BLOB NOT NULL REFERENCES team_workspaces(id) ON DELETE CASCADE,
    user_id BLOB NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    options TEXT NOT NULL,
    created_at TEXT NOT NULL
);

CREATE TABLE upload_files (
    id BLOB PRIMARY KEY,
    upload_id BLOB NOT NULL REFERENCES uploads(id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    file_name TEXT NOT NULL,
    size_bytes INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    content BLOB,
    status TEXT NOT NULL CHECK (status IN ('queued', 'extracting', 'indexed', 'failed', 'duplicate')),
    reason TEXT,
    document_id BLOB REFERENCES documents(id) ON DELETE SET NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX upload_files_by_upload ON upload_files (upload_id, position);

CREATE TABLE jobs (
    id BLOB PRIMARY KEY,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'done', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    locked_until TEXT,
    last_error TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX jobs_ready ON jobs (status, created_at);
