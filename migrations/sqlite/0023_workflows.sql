-- Workflows (seed §5): the seed's columns (id, name, definition, user_id, is_active) with the
-- workspace, a description, the version and timestamps; every saved definition is kept.
CREATE TABLE workflows (
    id BLOB PRIMARY KEY,
    workspace_id BLOB NOT NULL REFERENCES team_workspaces(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    description TEXT,
    definition TEXT NOT NULL,
    user_id BLOB REFERENCES users(id) ON DELETE SET NULL,
    is_active BOOLEAN NOT NULL,
    version INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX workflows_by_workspace ON workflows (workspace_id, id);

CREATE TABLE workflow_versions (
    workflow_id BLOB NOT NULL REFERENCES workflows(id) ON DELETE CASCADE,
    version INTEGER NOT NULL,
    definition TEXT NOT NULL,
    created_by BLOB REFERENCES users(id) ON DELETE SET NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (workflow_id, version)
);
