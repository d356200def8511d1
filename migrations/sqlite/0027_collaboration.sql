-- Live co-editing of agents. A ticket may open a project's collaboration socket.
ALTER TABLE ws_tickets ADD COLUMN project_id BLOB REFERENCES projects(id) ON DELETE CASCADE;

-- The shared Yjs document of a project's long text fields (its whole state as one v1
-- update), so every replica starts from the same document and edits survive restarts.
CREATE TABLE project_documents (
    project_id BLOB PRIMARY KEY REFERENCES projects(id) ON DELETE CASCADE,
    state BLOB NOT NULL,
    updated_at TEXT NOT NULL
);

-- Who has a collaboration socket open, on any replica; a row not seen for a minute is gone
-- (its host died).
CREATE TABLE collaboration_presence (
    connection_id BLOB PRIMARY KEY,
    project_id BLOB NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    user_id BLOB NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    can_edit BOOLEAN NOT NULL,
    field TEXT,
    joined_at TEXT NOT NULL,
    seen_at TEXT NOT NULL
);
CREATE INDEX collaboration_presence_by_project ON collaboration_presence (project_id, seen_at);
