-- Outbound webhooks: endpoints, one delivery per (endpoint, event) and each attempt of it.
CREATE TABLE webhook_endpoints (
    id BLOB PRIMARY KEY,
    workspace_id BLOB NOT NULL REFERENCES team_workspaces(id) ON DELETE CASCADE,
    url TEXT NOT NULL,
    description TEXT,
    -- Event types or patterns (`chat.*`, `*`).
    events TEXT NOT NULL,
    project_ids TEXT,
    enabled BOOLEAN NOT NULL,
    disabled_reason TEXT,
    -- The signing secret, encrypted; the one it replaced signs too until it expires.
    secret TEXT NOT NULL,
    previous_secret TEXT,
    previous_secret_expires_at TEXT,
    -- Since when every attempt failed (none while the last one succeeded), and how many.
    failing_since TEXT,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    -- The earliest `next_attempt_at` of its pending deliveries: senders find work by it.
    next_due_at TEXT,
    version INTEGER NOT NULL DEFAULT 1,
    created_by BLOB REFERENCES users(id) ON DELETE SET NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX webhook_endpoints_by_workspace ON webhook_endpoints (workspace_id, id);
CREATE INDEX webhook_endpoints_due ON webhook_endpoints (next_due_at);

CREATE TABLE webhook_deliveries (
    id BLOB PRIMARY KEY,
    endpoint_id BLOB NOT NULL REFERENCES webhook_endpoints(id) ON DELETE CASCADE,
    event_id BLOB NOT NULL,
    event_type TEXT NOT NULL,
    -- The body as sent: `{"type", "timestamp", "data"}`.
    payload TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    -- Pending: when the next attempt is due; while a sender holds it, when its claim lapses.
    next_attempt_at TEXT,
    claimed_by BLOB,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (endpoint_id, event_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (endpoint_id, status, next_attempt_at);
CREATE INDEX webhook_deliveries_by_status ON webhook_deliveries (endpoint_id, status, id);
CREATE INDEX webhook_deliveries_by_type ON webhook_deliveries (endpoint_id, event_type, id);
CREATE INDEX webhook_deliveries_by_time ON webhook_deliveries (created_at);

CREATE TABLE webhook_attempts (
    id BLOB PRIMARY KEY,
    delivery_id BLOB NOT NULL REFERENCES webhook_deliveries(id) ON DELETE CASCADE,
    attempted_at TEXT NOT NULL,
    response_status INTEGER,
    duration_ms INTEGER NOT NULL,
    -- The first 4 KiB of the response body.
    response_body TEXT,
    error TEXT
);
CREATE INDEX webhook_attempts_by_delivery ON webhook_attempts (delivery_id, id);
CREATE INDEX webhook_attempts_by_time ON webhook_attempts (attempted_at);

-- Attempts per endpoint and day, for GET /api/usage/metrics (tests not counted). Kept when
-- an endpoint is deleted. Latency buckets: ≤5, 10, 25, 50, 100, 250, 500 ms, 1, 2.5, 5, 10 s, more.
CREATE TABLE webhook_usage_daily (
    workspace_id BLOB NOT NULL,
    date TEXT NOT NULL,
    endpoint_id BLOB NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    failed_attempts INTEGER NOT NULL DEFAULT 0,
    -- Deliveries finished by these attempts.
    succeeded INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    lat_b0 INTEGER NOT NULL DEFAULT 0, lat_b1 INTEGER NOT NULL DEFAULT 0,
    lat_b2 INTEGER NOT NULL DEFAULT 0, lat_b3 INTEGER NOT NULL DEFAULT 0,
    lat_b4 INTEGER NOT NULL DEFAULT 0, lat_b5 INTEGER NOT NULL DEFAULT 0,
    lat_b6 INTEGER NOT NULL DEFAULT 0, lat_b7 INTEGER NOT NULL DEFAULT 0,
    lat_b8 INTEGER NOT NULL DEFAULT 0, lat_b9 INTEGER NOT NULL DEFAULT 0,
    lat_b10 INTEGER NOT NULL DEFAULT 0, lat_b11 INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (workspace_id, date, endpoint_id)
);
