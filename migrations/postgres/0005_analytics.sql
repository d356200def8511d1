-- Analytics: what each message is about (scored when written), daily rollups per agent,
-- A/B variants of an agent's configuration, and per-workspace topic keywords.

ALTER TABLE chat_messages ADD COLUMN sentiment DOUBLE PRECISION;
ALTER TABLE chat_messages ADD COLUMN intent TEXT;
ALTER TABLE chat_messages ADD COLUMN model TEXT;
CREATE INDEX chat_sessions_by_agent_status ON chat_sessions (agent_id, status);

-- One row per agent, day (UTC) and variant ('' without one). The seed's columns
-- (success_rate, avg_response_time, total_conversations, user_satisfaction) are kept
-- up to date from the counters beside them.
CREATE TABLE agent_metrics (
    id UUID PRIMARY KEY,
    agent_id UUID NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    workspace_id UUID NOT NULL REFERENCES team_workspaces(id) ON DELETE CASCADE,
    date DATE NOT NULL,
    variant TEXT NOT NULL DEFAULT '',
    success_rate DOUBLE PRECISION NOT NULL DEFAULT 0,
    avg_response_time DOUBLE PRECISION NOT NULL DEFAULT 0,
    total_conversations BIGINT NOT NULL DEFAULT 0,
    user_satisfaction DOUBLE PRECISION,
    user_messages BIGINT NOT NULL DEFAULT 0,
    agent_replies BIGINT NOT NULL DEFAULT 0,
    successful_replies BIGINT NOT NULL DEFAULT 0,
    unanswered_replies BIGINT NOT NULL DEFAULT 0,
    error_replies BIGINT NOT NULL DEFAULT 0,
    latency_ms_sum BIGINT NOT NULL DEFAULT 0,
    latency_ms_sq_sum DOUBLE PRECISION NOT NULL DEFAULT 0,
    rating_sum BIGINT NOT NULL DEFAULT 0,
    rating_count BIGINT NOT NULL DEFAULT 0,
    prompt_tokens BIGINT NOT NULL DEFAULT 0,
    completion_tokens BIGINT NOT NULL DEFAULT 0,
    positive_messages BIGINT NOT NULL DEFAULT 0,
    neutral_messages BIGINT NOT NULL DEFAULT 0,
    negative_messages BIGINT NOT NULL DEFAULT 0,
    -- Reply latency histogram: ≤100, 250, 500, 1000, 2000, 3000, 5000, 8000, 13000, 20000,
    -- 30000 ms, and above.
    lat_b0 BIGINT NOT NULL DEFAULT 0, lat_b1 BIGINT NOT NULL DEFAULT 0,
    lat_b2 BIGINT NOT NULL DEFAULT 0, lat_b3 BIGINT NOT NULL DEFAULT 0,
    lat_b4 BIGINT NOT NULL DEFAULT 0, lat_b5 BIGINT NOT NULL DEFAULT 0,
    lat_b6 BIGINT NOT NULL DEFAULT 0, lat_b7 BIGINT NOT NULL DEFAULT 0,
    lat_b8 BIGINT NOT NULL DEFAULT 0, lat_b9 BIGINT NOT NULL DEFAULT 0,
    lat_b10 BIGINT NOT NULL DEFAULT 0, lat_b11 BIGINT NOT NULL DEFAULT 0,
    UNIQUE (agent_id, date, variant)
);
CREATE INDEX agent_metrics_by_workspace ON agent_metrics (workspace_id, date);

-- Tokens and requests per agent, day and model, for usage and cost.
CREATE TABLE usage_daily (
    agent_id UUID NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    workspace_id UUID NOT NULL REFERENCES team_workspaces(id) ON DELETE CASCADE,
    date DATE NOT NULL,
    model TEXT NOT NULL,
    requests BIGINT NOT NULL DEFAULT 0,
    errors BIGINT NOT NULL DEFAULT 0,
    prompt_tokens BIGINT NOT NULL DEFAULT 0,
    completion_tokens BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (agent_id, date, model)
);
CREATE INDEX usage_daily_by_workspace ON usage_daily (workspace_id, date);

-- User messages per agent, day and label: topic:<name>, intent:<name>, question:<key>.
CREATE TABLE message_labels (
    agent_id UUID NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    workspace_id UUID NOT NULL REFERENCES team_workspaces(id) ON DELETE CASCADE,
    date DATE NOT NULL,
    label TEXT NOT NULL,
    messages BIGINT NOT NULL DEFAULT 0,
    example TEXT NOT NULL,
    PRIMARY KEY (agent_id, date, label)
);
CREATE INDEX message_labels_by_workspace ON message_labels (workspace_id, date);

CREATE TABLE workspace_topics (
    workspace_id UUID PRIMARY KEY REFERENCES team_workspaces(id) ON DELETE CASCADE,
    topics JSONB NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE project_variants (
    id UUID PRIMARY KEY,
    project_id UUID NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    weight BIGINT NOT NULL CHECK (weight BETWEEN 0 AND 100),
    system_prompt TEXT,
    settings JSONB NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    UNIQUE (project_id, name)
);
