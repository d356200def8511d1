-- Analytics exports: a report rendered by an exporter plugin in a background job; the file is
-- kept for download.
CREATE TABLE analytics_exports (
    id BLOB PRIMARY KEY,
    workspace_id BLOB NOT NULL REFERENCES team_workspaces(id) ON DELETE CASCADE,
    requested_by BLOB NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    plugin_id TEXT NOT NULL,
    time_range TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'done', 'failed')),
    progress INTEGER NOT NULL,
    error TEXT,
    content_type TEXT,
    file_name TEXT,
    file BLOB,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX analytics_exports_by_user ON analytics_exports (requested_by, id);
