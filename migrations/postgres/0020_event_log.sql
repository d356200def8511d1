-- The event log (an outbox): every change that matters writes a row here in the same
-- transaction as the change. Consumers (automation rules, integrations, the live activity
-- feed, …) read it in order from a durable position of their own.
--
-- On PostgreSQL transactions commit in any order: a row carries its transaction id, and a
-- consumer reads only rows of transactions older than every one still running (the snapshot's
-- xmin), in (tx_id, seq) order, so no row can appear behind its position.
CREATE TABLE events (
    seq BIGSERIAL PRIMARY KEY,
    id UUID NOT NULL UNIQUE,
    tx_id BIGINT NOT NULL DEFAULT (pg_current_xact_id()::text::bigint),
    workspace_id UUID NOT NULL REFERENCES team_workspaces(id) ON DELETE CASCADE,
    project_id UUID,
    type TEXT NOT NULL,
    actor_type TEXT NOT NULL,
    actor_id TEXT,
    subject_type TEXT NOT NULL,
    subject_id TEXT NOT NULL,
    subject_name TEXT,
    data JSONB NOT NULL,
    depth BIGINT NOT NULL DEFAULT 0,
    occurred_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX events_by_position ON events (tx_id, seq);
CREATE INDEX events_by_workspace ON events (workspace_id, id);
CREATE INDEX events_by_project ON events (project_id, id);
CREATE INDEX events_by_time ON events (occurred_at);

-- Each consumer's position in the log and the lease of the host reading for it: with several
-- replicas, one at a time reads for a consumer, so an event is consumed once per consumer.
CREATE TABLE event_consumers (
    name TEXT PRIMARY KEY,
    tx_id BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    leased_by UUID,
    leased_until TIMESTAMPTZ,
    updated_at TIMESTAMPTZ NOT NULL
);

-- Effects a consumer has had for an event (a post to an integration, …): a redelivered
-- event does not have them twice.
CREATE TABLE event_receipts (
    consumer TEXT NOT NULL,
    event_id UUID NOT NULL,
    effect TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (consumer, event_id, effect)
);
CREATE INDEX event_receipts_by_time ON event_receipts (created_at);

-- Automation rules: a trigger over live events and the actions it runs.
CREATE TABLE automation_rules (
    id UUID PRIMARY KEY,
    workspace_id UUID NOT NULL REFERENCES team_workspaces(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    description TEXT,
    project_ids JSONB,
    enabled BOOLEAN NOT NULL,
    trigger_type TEXT NOT NULL,
    -- The event type the trigger listens to (chat.message.created for the seed's three).
    event_type TEXT NOT NULL,
    conditions JSONB NOT NULL,
    actions JSONB NOT NULL,
    cooldown_seconds BIGINT,
    version BIGINT NOT NULL DEFAULT 1,
    created_by UUID REFERENCES users(id) ON DELETE SET NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX automation_rules_by_workspace ON automation_rules (workspace_id, id);
CREATE INDEX automation_rules_by_event ON automation_rules (workspace_id, event_type, trigger_type);

-- The first word of each keyword of a keyword rule: a message finds its candidate rules by
-- its own words, not by scanning every rule of the workspace.
CREATE TABLE automation_rule_keywords (
    rule_id UUID NOT NULL REFERENCES automation_rules(id) ON DELETE CASCADE,
    workspace_id UUID NOT NULL,
    word TEXT NOT NULL,
    PRIMARY KEY (workspace_id, word, rule_id)
);
CREATE INDEX automation_rule_keywords_by_rule ON automation_rule_keywords (rule_id);

-- Each firing of a rule: one per (rule, event), so a redelivered event does nothing twice.
CREATE TABLE automation_runs (
    id UUID PRIMARY KEY,
    rule_id UUID NOT NULL REFERENCES automation_rules(id) ON DELETE CASCADE,
    event_id UUID NOT NULL,
    event_type TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
    actions JSONB NOT NULL,
    depth BIGINT NOT NULL,
    started_at TIMESTAMPTZ NOT NULL,
    finished_at TIMESTAMPTZ,
    UNIQUE (rule_id, event_id)
);
CREATE INDEX automation_runs_by_rule ON automation_runs (rule_id, id);

-- A rule fires at most once per subject (a chat session) within its cooldown.
CREATE TABLE automation_cooldowns (
    rule_id UUID NOT NULL REFERENCES automation_rules(id) ON DELETE CASCADE,
    subject TEXT NOT NULL,
    until TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (rule_id, subject)
);

-- An integration installation may subscribe to event types: each matching event is sent
-- through its `notify`.
ALTER TABLE plugin_installations ADD COLUMN events JSONB NOT NULL DEFAULT '[]';

-- When every file of an upload was processed (its `knowledge.upload.completed` event is
-- recorded once, by whoever set this).
ALTER TABLE uploads ADD COLUMN completed_at TIMESTAMPTZ;
