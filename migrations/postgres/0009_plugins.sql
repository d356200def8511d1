-- Plugins: the packages (built-in or uploaded by an instance admin), their installations per
-- workspace (settings, secrets encrypted, grants, the digest the admin approved), each
-- installation's key-value store, and the log of calls.

CREATE TABLE plugins (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    kind TEXT NOT NULL,
    manifest JSONB NOT NULL,
    sha256 TEXT NOT NULL,
    wasm BYTEA NOT NULL,
    builtin BOOLEAN NOT NULL,
    uploaded_by UUID REFERENCES users(id) ON DELETE SET NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE plugin_installations (
    id UUID PRIMARY KEY,
    plugin_id TEXT NOT NULL REFERENCES plugins(id) ON DELETE CASCADE,
    workspace_id UUID NOT NULL REFERENCES team_workspaces(id) ON DELETE CASCADE,
    enabled BOOLEAN NOT NULL,
    config JSONB NOT NULL,
    secrets TEXT,
    http_hosts JSONB NOT NULL,
    approved_sha256 TEXT NOT NULL,
    installed_by UUID REFERENCES users(id) ON DELETE SET NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    UNIQUE (plugin_id, workspace_id)
);
CREATE INDEX plugin_installations_by_workspace ON plugin_installations (workspace_id, plugin_id);

CREATE TABLE plugin_kv (
    plugin_id TEXT NOT NULL REFERENCES plugins(id) ON DELETE CASCADE,
    workspace_id UUID NOT NULL REFERENCES team_workspaces(id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    value BYTEA NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (plugin_id, workspace_id, key)
);

CREATE TABLE plugin_invocations (
    id UUID PRIMARY KEY,
    plugin_id TEXT NOT NULL REFERENCES plugins(id) ON DELETE CASCADE,
    workspace_id UUID REFERENCES team_workspaces(id) ON DELETE CASCADE,
    operation TEXT NOT NULL,
    status TEXT NOT NULL,
    duration_us BIGINT NOT NULL,
    error TEXT,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX plugin_invocations_by_plugin ON plugin_invocations (plugin_id, id);
