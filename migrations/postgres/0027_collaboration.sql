-- Live co-editing of agents. A ticket may open a project's collaboration socket.
ALTER TABLE ws_tickets ADD COLUMN project_id UUID REFERENCES projects(id) ON DELETE CASCADE;

-- The shared Yjs document of a project's long text fields (its whole state as one v1
-- update), so every replica starts from the same document and edits survive restarts.
CREATE TABLE project_documents (
    project_id UUID PRIMARY KEY REFERENCES projects(id) ON DELETE CASCADE,
    state BYTEA NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

-- Who has a collaboration socket open, on any replica; a row not seen for a minute is gone
-- (its host died).
CREATE TABLE collaboration_presence (
    connection_id UUID PRIMARY KEY,
    project_id UUID NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    user_id UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    can_edit BOOLEAN NOT NULL,
    field TEXT,
    joined_at TIMESTAMPTZ NOT NULL,
    seen_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX collaboration_presence_by_project ON collaboration_presence (project_id, seen_at);
