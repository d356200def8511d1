-- Analytics: what each message is about (scored when written), daily rollups per agent,
-- A/B variants of an agent's configuration, and per-workspace topic keywords.

ALTER TABLE chat_messages ADD COLUMN sentiment REAL;
ALTER TABLE chat_messages ADD COLUMN intent TEXT;
ALTER TABLE chat_messages ADD COLUMN model TEXT;
CREATE INDEX chat_sessions_by_agent_status ON chat_sessions (agent_id, status);

-- One row per agent, day (UTC) and variant ('' without one). The seed's columns
-- (success_rate, avg_response_time, total_conversations, user_satisfaction) are kept
-- up to date from the counters beside them.
CREATE TABLE agent_metrics (
    id BLOB PRIMARY KEY,
    agent_id BLOB NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    workspace_id BLOB NOT NULL REFERENCES team_workspaces(id) ON DELETE CASCADE,
    date TEXT NOT NULL,
    variant TEXT NOT NULL DEFAULT '',
    success_rate REAL NOT NULL DEFAULT 0,
    avg_response_time REAL NOT NULL DEFAULT 0,
    total_conversations INTEGER NOT NULL DEFAULT 0,
    user_satisfaction REAL,
    user_messages INTEGER NOT NULL DEFAULT 0,
    agent_replies INTEGER NOT NULL DEFAULT 0,
    successful_replies INTEGER NOT NULL DEFAULT 0,
    unanswered_replies INTEGER NOT NULL DEFAULT 0,
    error_replies INTEGER NOT NULL DEFAULT 0,
    latency_ms_sum INTEGER NOT NULL DEFAULT 0,
    latency_ms_sq_sum REAL NOT NULL DEFAULT 0,
    rating_sum INTEGER NOT NULL DEFAULT 0,
    rating_count INTEGER NOT NULL DEFAULT 0,
    prompt_tokens INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    positive_messages INTEGER NOT NULL DEFAULT 0,
    neutral_messages INTEGER NOT NULL DEFAULT 0,
    negative_messages INTEGER NOT NULL DEFAULT 0,
    -- Reply latency histogram: ≤100, 250, 500, 1000, 2000, 3000, 5000, 8000, 13000, 20000,
    -- 30000 ms, and above.
    lat_b0 INTEGER NOT NULL DEFAULT 0, lat_b1 INTEGER NOT NULL DEFAULT 0,
    lat_b2 INTEGER NOT NULL DEFAULT 0, lat_b3 INTEGER NOT NULL DEFAULT 0,
    lat_b4 INTEGER NOT NULL DEFAULT 0, lat_b5 INTEGER NOT NULL DEFAULT 0,
    lat_b6 INTEGER NOT NULL DEFAULT 0, lat_b7 INTEGER NOT NULL DEFAULT 0,
    lat_b8 INTEGER NOT NULL DEFAULT 0, lat_b9 INTEGER NOT NULL DEFAULT 0,
    lat_b10 INTEGER NOT NULL DEFAULT 0, lat_b11 INTEGER NOT NULL DEFAULT 0,
    UNIQUE (agent_id, date, variant)
);
CREATE INDEX agent_metrics_by_workspace ON agent_metrics (workspace_id, date);

-- Tokens and requests per agent, day and model, for usage and cost.
CREATE TABLE usage_daily (
    agent_id BLOB NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    workspace_id BLOB NOT NULL REFERENCES team_workspaces(id) ON DELETE CASCADE,
    date TEXT NOT NULL,
    model TEXT NOT NULL,
    requests INTEGER NOT NULL DEFAULT 0,
    errors INTEGER NOT NULL DEFAULT 0,
    prompt_tokens INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (agent_id, date, model)
);
CREATE INDEX usage_daily_by_workspace ON usage_daily (workspace_id, date);

-- User messages per agent, day and label: topic:<name>, intent:<name>, question:<key>.
CREATE TABLE message_labels (
    agent_id BLOB NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    workspace_id BLOB NOT NULL REFERENCES team_workspaces(id) ON DELETE CASCADE,
    date TEXT NOT NULL,
    label TEXT NOT NULL,
    messages INTEGER NOT NULL DEFAULT 0,
    example TEXT NOT NULL,
    PRIMARY KEY (agent_id, date, label)
);
CREATE INDEX message_labels_by_workspace ON message_labels (workspace_id, date);

CREATE TABLE workspace_topics (
    workspace_id BLOB PRIMARY KEY REFERENCES team_workspaces(id) ON DELETE CASCADE,
    topics TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE project_variants (
    id BLOB PRIMARY KEY,
    project_id BLOB NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    weight INTEGER NOT NULL CHECK (weight BETWEEN 0 AND 100),
    system_prompt TEXT,
    settings TEXT NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (project_id, name)
);
