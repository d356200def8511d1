-- Outbound webhooks: endpoints, one delivery per (endpoint, event) and each attempt of it.
CREATE TABLE webhook_endpoints (
    id UUID PRIMARY KEY,
    workspace_id UUID NOT NULL REFERENCES team_workspaces(id) ON DELETE CASCADE,
    url TEXT NOT NULL,
    description TEXT,
    -- Event types or patterns (`chat.*`, `*`).
    events JSONB NOT NULL,
    project_ids JSONB,
    enabled BOOLEAN NOT NULL,
    disabled_reason TEXT,
    -- The signing secret, encrypted; the one it replaced signs too until it expires.
    secret TEXT NOT NULL,
    previous_secret TEXT,
    previous_secret_expires_at TIMESTAMPTZ,
    -- Since when every attempt failed (none while the last one succeeded), and how many.
    failing_since TIMESTAMPTZ,
    consecutive_failures BIGINT NOT NULL DEFAULT 0,
    -- The earliest `next_attempt_at` of its pending deliveries: senders find work by it.
    next_due_at TIMESTAMPTZ,
    version BIGINT NOT NULL DEFAULT 1,
    created_by UUID REFERENCES users(id) ON DELETE SET NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX webhook_endpoints_by_workspace ON webhook_endpoints (workspace_id, id);
CREATE INDEX webhook_endpoints_due ON webhook_endpoints (next_due_at);

CREATE TABLE webhook_deliveries (
    id UUID PRIMARY KEY,
    endpoint_id UUID NOT NULL REFERENCES webhook_endpoints(id) ON DELETE CASCADE,
    event_id UUID NOT NULL,
    event_type TEXT NOT NULL,
    -- The body as sent: `{"type", "timestamp", "data"}`.
    payload TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    attempts BIGINT NOT NULL DEFAULT 0,
    -- Pending: when the next attempt is due; while a sender holds it, when its claim lapses.
    next_attempt_at TIMESTAMPTZ,
    claimed_by UUID,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    UNIQUE (endpoint_id, event_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (endpoint_id, status, next_attempt_at);
CREATE INDEX webhook_deliveries_by_status ON webhook_deliveries (endpoint_id, status, id);
CREATE INDEX webhook_deliveries_by_type ON webhook_deliveries (endpoint_id, event_type, id);
CREATE INDEX webhook_deliveries_by_time ON webhook_deliveries (created_at);

CREATE TABLE webhook_attempts (
    id UUID PRIMARY KEY,
    delivery_id UUID NOT NULL REFERENCES webhook_deliveries(id) ON DELETE CASCADE,
    attempted_at TIMESTAMPTZ NOT NULL,
    response_status BIGINT,
    duration_ms BIGINT NOT NULL,
    -- The first 4 KiB of the response body.
    response_body TEXT,
    error TEXT
);
CREATE INDEX webhook_attempts_by_delivery ON webhook_attempts (delivery_id, id);
CREATE INDEX webhook_attempts_by_time ON webhook_attempts (attempted_at);

-- Attempts per endpoint and day, for GET /api/usage/metrics (tests not counted). Kept when
-- an endpoint is deleted. Latency buckets: ≤5, 10, 25, 50, 100, 250, 500 ms, 1, 2.5, 5, 10 s, more.
CREATE TABLE webhook_usage_daily (
    workspace_id UUID NOT NULL,
    date DATE NOT NULL,
    endpoint_id UUID NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    failed_attempts BIGINT NOT NULL DEFAULT 0,
    -- Deliveries finished by these attempts.
    succeeded BIGINT NOT NULL DEFAULT 0,
    failed BIGINT NOT NULL DEFAULT 0,
    lat_b0 BIGINT NOT NULL DEFAULT 0, lat_b1 BIGINT NOT NULL DEFAULT 0,
    lat_b2 BIGINT NOT NULL DEFAULT 0, lat_b3 BIGINT NOT NULL DEFAULT 0,
    lat_b4 BIGINT NOT NULL DEFAULT 0, lat_b5 BIGINT NOT NULL DEFAULT 0,
    lat_b6 BIGINT NOT NULL DEFAULT 0, lat_b7 BIGINT NOT NULL DEFAULT 0,
    lat_b8 BIGINT NOT NULL DEFAULT 0, lat_b9 BIGINT NOT NULL DEFAULT 0,
    lat_b10 BIGINT NOT NULL DEFAULT 0, lat_b11 BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (workspace_id, date, endpoint_id)
);
