-- Analytics exports: a report rendered by an exporter plugin in a background job; the file is
-- kept for download.
CREATE TABLE analytics_exports (
    id UUID PRIMARY KEY,
    workspace_id UUID NOT NULL REFERENCES team_workspaces(id) ON DELETE CASCADE,
    requested_by UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    plugin_id TEXT NOT NULL,
    time_range TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'done', 'failed')),
    progress BIGINT NOT NULL,
    error TEXT,
    content_type TEXT,
    file_name TEXT,
    file BYTEA,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX analytics_exports_by_user ON analytics_exports (requested_by, id);
