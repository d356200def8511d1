-- Knowledge: documents of a workspace (optionally attached to agents), their versions, and
-- the chunks of the current version, indexed for full-text search (tsvector + GIN).

CREATE TABLE documents (
    id UUID PRIMARY KEY,
    workspace_id UUID NOT NULL REFERENCES team_workspaces(id) ON DELETE CASCADE,
    title TEXT NOT NULL,
    file_type TEXT NOT NULL,
    category TEXT NOT NULL DEFAULT '',
    tags JSONB NOT NULL,
    current_version BIGINT NOT NULL,
    sha256 TEXT NOT NULL,
    size_bytes BIGINT NOT NULL,
    created_by UUID REFERENCES users(id) ON DELETE SET NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX documents_by_workspace ON documents (workspace_id, id);
CREATE INDEX documents_by_sha ON documents (workspace_id, sha256);

CREATE TABLE document_projects (
    document_id UUID NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    project_id UUID NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    PRIMARY KEY (document_id, project_id)
);
CREATE INDEX document_projects_by_project ON document_projects (project_id, document_id);

CREATE TABLE document_versions (
    document_id UUID NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    version BIGINT NOT NULL,
    content TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size_bytes BIGINT NOT NULL,
    note TEXT NOT NULL DEFAULT '',
    created_by UUID REFERENCES users(id) ON DELETE SET NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (document_id, version)
);

CREATE TABLE document_chunks (
    seq BIGSERIAL PRIMARY KEY,
    id UUID NOT NULL UNIQUE,
    document_id UUID NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    workspace_id UUID NOT NULL,
    version BIGINT NOT NULL,
    position BIGINT NOT NULL,
    content TEXT NOT NULL,
    tsv TSVECTOR GENERATED ALWAYS AS (to_tsvector('english', content)) STORED
);
CREATE INDEX document_chunks_by_document ON document_chunks (document_id, position);
CREATE INDEX document_chunks_search ON document_chunks USING GIN (tsv);
