-- Chat: sessions with agents, their messages and participants, conversation templates,
-- single-use WebSocket tickets, and per-project LLM provider settings.

CREATE TABLE chat_sessions (
    id BLOB PRIMARY KEY,
    workspace_id BLOB NOT NULL REFERENCES team_workspaces(id) ON DELETE CASCADE,
    user_id BLOB NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    agent_id BLOB NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    title TEXT NOT NULL,
    status VARCHAR(20) NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'closed', 'escalated')),
    priority TEXT NOT NULL DEFAULT 'normal' CHECK (priority IN ('low', 'normal', 'high', 'urgent')),
    config_version INTEGER NOT NULL,
    variant TEXT,
    template_id BLOB,
    last_seq INTEGER NOT NULL DEFAULT 0,
    last_message_at TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX chat_sessions_by_agent ON chat_sessions (agent_id, created_at);
CREATE INDEX chat_sessions_by_activity ON chat_sessions (last_message_at, id);

CREATE TABLE chat_participants (
    session_id BLOB NOT NULL REFERENCES chat_sessions(id) ON DELETE CASCADE,
    user_id BLOB NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    last_read_seq INTEGER NOT NULL DEFAULT 0,
    joined_at TEXT NOT NULL,
    PRIMARY KEY (session_id, user_id)
);
CREATE INDEX chat_participants_by_user ON chat_participants (user_id, session_id);

CREATE TABLE chat_messages (
    id BLOB PRIMARY KEY,
    session_id BLOB NOT NULL REFERENCES chat_sessions(id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('user', 'agent', 'system')),
    author_id BLOB REFERENCES users(id) ON DELETE SET NULL,
    content TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    latency_ms INTEGER,
    status TEXT NOT NULL DEFAULT 'ok' CHECK (status IN ('ok', 'unanswered', 'error')),
    rating INTEGER CHECK (rating BETWEEN 1 AND 5),
    rating_comment TEXT,
    created_at TEXT NOT NULL,
    UNIQUE (session_id, seq)
);

CREATE TABLE chat_templates (
    id BLOB PRIMARY KEY,
    workspace_id BLOB REFERENCES team_workspaces(id) ON DELETE CASCADE,
    category TEXT NOT NULL CHECK (category IN ('customer_support', 'sales', 'general')),
    title TEXT NOT NULL,
    content TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    created_by BLOB REFERENCES users(id) ON DELETE SET NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX chat_templates_by_workspace ON chat_templates (workspace_id, category, id);

CREATE TABLE ws_tickets (
    ticket_hash TEXT PRIMARY KEY,
    user_id BLOB NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    session_id BLOB REFERENCES chat_sessions(id) ON DELETE CASCADE,
    expires_at TEXT NOT NULL
);

CREATE TABLE project_providers (
    project_id BLOB PRIMARY KEY REFERENCES projects(id) ON DELETE CASCADE,
    base_url TEXT NOT NULL,
    model TEXT NOT NULL,
    api_key_encrypted TEXT,
    stream BOOLEAN NOT NULL DEFAULT 1,
    timeout_ms INTEGER NOT NULL,
    updated_at TEXT NOT NULL
);
