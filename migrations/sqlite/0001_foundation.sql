-- Users, team workspaces and members, tokens, projects (agents), shares, templates,
-- audit log, user preferences and shortcuts.

CREATE TABLE users (
    id BLOB PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    is_instance_admin BOOLEAN NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE team_workspaces (
    id BLOB PRIMARY KEY,
    name VARCHAR(255) NOT NULL,
    owner_id BLOB NOT NULL REFERENCES users(id),
    is_personal BOOLEAN NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL
);

CREATE TABLE workspace_members (
    workspace_id BLOB NOT NULL REFERENCES team_workspaces(id) ON DELETE CASCADE,
    user_id BLOB NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    created_at TEXT NOT NULL,
    PRIMARY KEY (workspace_id, user_id)
);
CREATE INDEX workspace_members_by_user ON workspace_members (user_id, workspace_id);

CREATE TABLE api_tokens (
    id BLOB PRIMARY KEY,
    user_id BLOB NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    kind TEXT NOT NULL CHECK (kind IN ('session', 'api_key')),
    name TEXT,
    token_hash TEXT NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT
);
CREATE INDEX api_tokens_by_user ON api_tokens (user_id, kind, id);

CREATE TABLE agent_templates (
    id TEXT PRIMARY KEY,
    category TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    system_prompt TEXT NOT NULL,
    settings TEXT NOT NULL,
    model_config TEXT NOT NULL,
    tags TEXT NOT NULL,
    position INTEGER NOT NULL
);
CREATE INDEX agent_templates_by_category ON agent_templates (category, position);

CREATE TABLE projects (
    id BLOB PRIMARY KEY,
    workspace_id BLOB NOT NULL REFERENCES team_workspaces(id) ON DELETE CASCADE,
    owner_id BLOB NOT NULL REFERENCES users(id),
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    tags TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('active', 'paused', 'training', 'error')),
    settings TEXT NOT NULL,
    system_prompt TEXT NOT NULL DEFAULT '',
    model_config TEXT NOT NULL,
    template_id TEXT REFERENCES agent_templates(id),
    archived_at TEXT,
    version INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX projects_by_workspace_created ON projects (workspace_id, created_at, id);
CREATE INDEX projects_by_workspace_updated ON projects (workspace_id, updated_at, id);
CREATE INDEX projects_by_workspace_name ON projects (workspace_id, name, id);
CREATE INDEX projects_by_workspace_status ON projects (workspace_id, status);
-- Global sort orders, walked in order when the caller sees projects of several workspaces.
CREATE INDEX projects_by_created ON projects (created_at, id);
CREATE INDEX projects_by_updated ON projects (updated_at, id);
CREATE INDEX projects_by_name ON projects (name, id);

-- The tags of a project, one row each, for filtering and the available-tags facet.
CREATE TABLE project_tags (
    project_id BLOB NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    tag TEXT NOT NULL,
    PRIMARY KEY (project_id, tag)
);
CREATE INDEX project_tags_by_tag ON project_tags (tag, project_id);

-- How many projects of a workspace carry each tag: the tag facet of the project list reads
-- these few rows instead of every project's tags.
CREATE TABLE workspace_tags (
    workspace_id BLOB NOT NULL REFERENCES team_workspaces(id) ON DELETE CASCADE,
    tag TEXT NOT NULL,
    project_count INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, tag)
);

CREATE TABLE project_shares (
    id BLOB PRIMARY KEY,
    project_id BLOB NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    user_id BLOB NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    permission TEXT NOT NULL CHECK (permission IN ('view', 'edit', 'admin')),
    expires_at TEXT,
    created_by BLOB NOT NULL REFERENCES users(id),
    created_at TEXT NOT NULL,
    UNIQUE (project_id, user_id)
);
CREATE INDEX project_shares_by_user ON project_shares (user_id, project_id);

CREATE TABLE audit_log (
    id BLOB PRIMARY KEY,
    workspace_id BLOB NOT NULL REFERENCES team_workspaces(id) ON DELETE CASCADE,
    actor_id BLOB REFERENCES users(id) ON DELETE SET NULL,
    action TEXT NOT NULL,
    target_type TEXT NOT NULL,
    target_id TEXT,
    details TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX audit_log_by_workspace ON audit_log (workspace_id, id);

CREATE TABLE user_preferences (
    user_id BLOB PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    theme TEXT NOT NULL,
    default_view_mode TEXT NOT NULL,
    dashboard_layout TEXT NOT NULL,
    notification_settings TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE custom_shortcuts (
    id BLOB PRIMARY KEY,
    user_id BLOB NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    keys TEXT NOT NULL,
    action TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    parameters TEXT NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (user_id, keys)
);
CREATE INDEX custom_shortcuts_by_user ON custom_shortcuts (user_id, id);
