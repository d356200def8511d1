-- API requests per caller (user and token) and day, for GET /api/usage/metrics. Errors are
-- answers of 400 and above. Kept when a token is revoked.
CREATE TABLE api_usage_daily (
    date DATE NOT NULL,
    user_id UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    -- A login session's or an API key's.
    token_id UUID NOT NULL,
    api_key BOOLEAN NOT NULL,
    requests BIGINT NOT NULL DEFAULT 0,
    errors BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (date, user_id, token_id)
);
CREATE INDEX api_usage_by_user ON api_usage_daily (user_id, date);
