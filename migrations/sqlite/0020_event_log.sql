-- The event log (an outbox): every change that matters writes a row here in the same
-- transaction as the change. Consumers (automation rules, integrations, the live activity
-- feed, …) read it in order from a durable position of their own.
--
-- On SQLite one writer holds the lock at a time, so `seq` (assigned inside the writing
-- transaction) follows commit order and a consumer's position is `seq` alone (`tx_id` is 0).
CREATE TABLE events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id BLOB NOT NULL UNIQUE,
    tx_id INTEGER NOT NULL DEFAULT 0,
    workspace_id BLOB NOT NULL REFERENCES team_workspaces(id) ON DELETE CASCADE,
    project_id BLOB,
    type TEXT NOT NULL,
    actor_type TEXT NOT NULL,
    actor_id TEXT,
    subject_type TEXT NOT NULL,
    subject_id TEXT NOT NULL,
    subject_name TEXT,
    data TEXT NOT NULL,
    depth INTEGER NOT NULL DEFAULT 0,
    occurred_at TEXT NOT NULL
);
CREATE INDEX events_by_position ON events (tx_id, seq);
CREATE INDEX events_by_workspace ON events (workspace_id, id);
CREATE INDEX events_by_project ON events (project_id, id);
CREATE INDEX events_by_time ON events (occurred_at);

-- Each consumer's position in the log and the lease of the host reading for it: with several
-- replicas, one at a time reads for a consumer, so an event is consumed once per consumer.
CREATE TABLE event_consumers (
    name TEXT PRIMARY KEY,
    tx_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    leased_by BLOB,
    leased_until TEXT,
    updated_at TEXT NOT NULL
);

-- Effects a consumer has had for an event (a post to an integration, …): a redelivered
-- event does not have them twice.
CREATE TABLE event_receipts (
    consumer TEXT NOT NULL,
    event_id BLOB NOT NULL,
    effect TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (consumer, event_id, effect)
);
CREATE INDEX event_receipts_by_time ON event_receipts (created_at);

-- Automation rules: a trigger over live events and the actions it runs.
CREATE TABLE automation_rules (
    id BLOB PRIMARY KEY,
    workspace_id BLOB NOT NULL REFERENCES team_workspaces(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    description TEXT,
    project_ids TEXT,
    enabled BOOLEAN NOT NULL,
    trigger_type TEXT NOT NULL,
    -- The event type the trigger listens to (chat.message.created for the seed's three).
    event_type TEXT NOT NULL,
    conditions TEXT NOT NULL,
    actions TEXT NOT NULL,
    cooldown_seconds INTEGER,
    version INTEGER NOT NULL DEFAULT 1,
    created_by BLOB REFERENCES users(id) ON DELETE SET NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX automation_rules_by_workspace ON automation_rules (workspace_id, id);
CREATE INDEX automation_rules_by_event ON automation_rules (workspace_id, event_type, trigger_type);

-- The first word of each keyword of a keyword rule: a message finds its candidate rules by
-- its own words, not by scanning every rule of the workspace.
CREATE TABLE automation_rule_keywords (
    rule_id BLOB NOT NULL REFERENCES automation_rules(id) ON DELETE CASCADE,
    workspace_id BLOB NOT NULL,
    word TEXT NOT NULL,
    PRIMARY KEY (workspace_id, word, rule_id)
);
CREATE INDEX automation_rule_keywords_by_rule ON automation_rule_keywords (rule_id);

-- Each firing of a rule: one per (rule, event), so a redelivered event does nothing twice.
CREATE TABLE automation_runs (
    id BLOB PRIMARY KEY,
    rule_id BLOB NOT NULL REFERENCES automation_rules(id) ON DELETE CASCADE,
    event_id BLOB NOT NULL,
    event_type TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
    actions TEXT NOT NULL,
    depth INTEGER NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    UNIQUE (rule_id, event_id)
);
CREATE INDEX automation_runs_by_rule ON automation_runs (rule_id, id);

-- A rule fires at most once per subject (a chat session) within its cooldown.
CREATE TABLE automation_cooldowns (
    rule_id BLOB NOT NULL REFERENCES automation_rules(id) ON DELETE CASCADE,
    subject TEXT NOT NULL,
    until TEXT NOT NULL,
    PRIMARY KEY (rule_id, subject)
);

-- An integration installation may subscribe to event types: each matching event is sent
-- through its `notify`.
ALTER TABLE plugin_installations ADD COLUMN events TEXT NOT NULL DEFAULT '[]';

-- When every file of an upload was processed (its `knowledge.upload.completed` event is
-- recorded once, by whoever set this).
ALTER TABLE uploads ADD COLUMN completed_at TEXT;
