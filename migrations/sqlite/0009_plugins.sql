-- Plugins: the packages (built-in or uploaded by an instance admin), their installations per
-- workspace (settings, secrets encrypted, grants, the digest the admin approved), each
-- installation's key-value store, and the log of calls.

CREATE TABLE plugins (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    kind TEXT NOT NULL,
    manifest TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    wasm BLOB NOT NULL,
    builtin INTEGER NOT NULL,
    uploaded_by BLOB REFERENCES users(id) ON DELETE SET NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE plugin_installations (
    id BLOB PRIMARY KEY,
    plugin_id TEXT NOT NULL REFERENCES plugins(id) ON DELETE CASCADE,
    workspace_id BLOB NOT NULL REFERENCES team_workspaces(id) ON DELETE CASCADE,
    enabled INTEGER NOT NULL,
    config TEXT NOT NULL,
    secrets TEXT,
    http_hosts TEXT NOT NULL,
    approved_sha256 TEXT NOT NULL,
    installed_by BLOB REFERENCES users(id) ON DELETE SET NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (plugin_id, workspace_id)
);
CREATE INDEX plugin_installations_by_workspace ON plugin_installations (workspace_id, plugin_id);

CREATE TABLE plugin_kv (
    plugin_id TEXT NOT NULL REFERENCES plugins(id) ON DELETE CASCADE,
    workspace_id BLOB NOT NULL REFERENCES team_workspaces(id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    value BLOB NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (plugin_id, workspace_id, key)
);

CREATE TABLE plugin_invocations (
    id BLOB PRIMARY KEY,
    plugin_id TEXT NOT NULL REFERENCES plugins(id) ON DELETE CASCADE,
    workspace_id BLOB REFERENCES team_workspaces(id) ON DELETE CASCADE,
    operation TEXT NOT NULL,
    status TEXT NOT NULL,
    duration_us INTEGER NOT NULL,
    error TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX plugin_invocations_by_plugin ON plugin_invocations (plugin_id, id);
