-- Knowledge: documents of a workspace (optionally attached to agents), their versions, and
-- the chunks of the current version, indexed for full-text search (FTS5, bm25).

CREATE TABLE documents (
    id BLOB PRIMARY KEY,
    workspace_id BLOB NOT NULL REFERENCES team_workspaces(id) ON DELETE CASCADE,
    title TEXT NOT NULL,
    file_type TEXT NOT NULL,
    category TEXT NOT NULL DEFAULT '',
    tags TEXT NOT NULL,
    current_version INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    size_bytes INTEGER NOT NULL,
    created_by BLOB REFERENCES users(id) ON DELETE SET NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX documents_by_workspace ON documents (workspace_id, id);
CREATE INDEX documents_by_sha ON documents (workspace_id, sha256);

CREATE TABLE document_projects (
    document_id BLOB NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    project_id BLOB NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    PRIMARY KEY (document_id, project_id)
);
CREATE INDEX document_projects_by_project ON document_projects (project_id, document_id);

CREATE TABLE document_versions (
    document_id BLOB NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    version INTEGER NOT NULL,
    content TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size_bytes INTEGER NOT NULL,
    note TEXT NOT NULL DEFAULT '',
    created_by BLOB REFERENCES users(id) ON DELETE SET NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (document_id, version)
);

CREATE TABLE document_chunks (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id BLOB NOT NULL UNIQUE,
    document_id BLOB NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    workspace_id BLOB NOT NULL,
    version INTEGER NOT NULL,
    position INTEGER NOT NULL,
    content TEXT NOT NULL
);
CREATE INDEX document_chunks_by_document ON document_chunks (document_id, position);

-- The search index over chunk text; its rowid is the chunk's seq. Kept in step by triggers,
-- so that deleting a document (and its chunks, by cascade) empties the index too.
CREATE VIRTUAL TABLE document_chunks_fts USING fts5(
    content, content = 'document_chunks', content_rowid = 'seq', tokenize = 'porter unicode61'
);
CREATE TRIGGER document_chunks_ai AFTER INSERT ON document_chunks BEGIN
    INSERT INTO document_chunks_fts (rowid, content) VALUES (new.seq, new.content);
END;
CREATE TRIGGER document_chunks_ad AFTER DELETE ON document_chunks BEGIN
    INSERT INTO document_chunks_fts (document_chunks_fts, rowid, content) VALUES ('delete', old.seq, old.content);
END;
