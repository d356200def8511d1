-- Chat: sessions with agents, their messages and participants, conversation templates,
-- single-use WebSocket tickets, and per-project LLM provider settings.

CREATE TABLE chat_sessions (
    id UUID PRIMARY KEY,
    workspace_id UUID NOT NULL REFERENCES team_workspaces(id) ON DELETE CASCADE,
    user_id UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    agent_id UUID NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    title TEXT NOT NULL,
    status VARCHAR(20) NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'closed', 'escalated')),
    priority TEXT NOT NULL DEFAULT 'normal' CHECK (priority IN ('low', 'normal', 'high', 'urgent')),
    config_version BIGINT NOT NULL,
    variant TEXT,
    template_id UUID,
    last_seq BIGINT NOT NULL DEFAULT 0,
    last_message_at TIMESTAMPTZ NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX chat_sessions_by_agent ON chat_sessions (agent_id, created_at);
CREATE INDEX chat_sessions_by_activity ON chat_sessions (last_message_at, id);

CREATE TABLE chat_participants (
    session_id UUID NOT NULL REFERENCES chat_sessions(id) ON DELETE CASCADE,
    user_id UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    last_read_seq BIGINT NOT NULL DEFAULT 0,
    joined_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (session_id, user_id)
);
CREATE INDEX chat_participants_by_user ON chat_participants (user_id, session_id);

CREATE TABLE chat_messages (
    id UUID PRIMARY KEY,
    session_id UUID NOT NULL REFERENCES chat_sessions(id) ON DELETE CASCADE,
    seq BIGINT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('user', 'agent', 'system')),
    author_id UUID REFERENCES users(id) ON DELETE SET NULL,
    content TEXT NOT NULL,
    prompt_tokens BIGINT NOT NULL DEFAULT 0,
    completion_tokens BIGINT NOT NULL DEFAULT 0,
    latency_ms BIGINT,
    status TEXT NOT NULL DEFAULT 'ok' CHECK (status IN ('ok', 'unanswered', 'error')),
    rating BIGINT CHECK (rating BETWEEN 1 AND 5),
    rating_comment TEXT,
    created_at TIMESTAMPTZ NOT NULL,
    UNIQUE (session_id, seq)
);

CREATE TABLE chat_templates (
    id UUID PRIMARY KEY,
    workspace_id UUID REFERENCES team_workspaces(id) ON DELETE CASCADE,
    category TEXT NOT NULL CHECK (category IN ('customer_support', 'sales', 'general')),
    title TEXT NOT NULL,
    content TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    created_by UUID REFERENCES users(id) ON DELETE SET NULL,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX chat_templates_by_workspace ON chat_templates (workspace_id, category, id);

CREATE TABLE ws_tickets (
    ticket_hash TEXT PRIMARY KEY,
    user_id UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    session_id UUID REFERENCES chat_sessions(id) ON DELETE CASCADE,
    expires_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE project_providers (
    project_id UUID PRIMARY KEY REFERENCES projects(id) ON DELETE CASCADE,
    base_url TEXT NOT NULL,
    model TEXT NOT NULL,
    api_key_encrypted TEXT,
    stream BOOLEAN NOT NULL DEFAULT TRUE,
    timeout_ms BIGINT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
