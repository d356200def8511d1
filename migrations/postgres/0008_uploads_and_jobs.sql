-- Bulk uploads: each file is kept until processed, and durable jobs do the processing
-- (claimed with FOR UPDATE SKIP LOCKED on PostgreSQL; a lease lets another worker resume a
-- job whose worker died).

CREATE TABLE uploads (
    id UUID PRIMARY KEY,
    workspace_id UUID NOT NULL REFERENCES team_workspaces(id) ON DELETE CASCADE,
    user_id UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    options JSONB NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE upload_files (
    id UUID PRIMARY KEY,
    upload_id UUID NOT NULL REFERENCES uploads(id) ON DELETE CASCADE,
    position BIGINT NOT NULL,
    file_name TEXT NOT NULL,
    size_bytes BIGINT NOT NULL,
    sha256 TEXT NOT NULL,
    content BYTEA,
    status TEXT NOT NULL CHECK (status IN ('queued', 'extracting', 'indexed', 'failed', 'duplicate')),
    reason TEXT,
    document_id UUID REFERENCES documents(id) ON DELETE SET NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX upload_files_by_upload ON upload_files (upload_id, position);

CREATE TABLE jobs (
    id UUID PRIMARY KEY,
    kind TEXT NOT NULL,
    payload JSONB NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'done', 'failed')),
    attempts BIGINT NOT NULL DEFAULT 0,
    locked_until TIMESTAMPTZ,
    last_error TEXT,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX jobs_ready ON jobs (status, created_at);
