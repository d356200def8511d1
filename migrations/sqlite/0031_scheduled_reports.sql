-- Scheduled reports: a composed report run on a cron schedule (UTC) as its owner, its file
-- announced to recipients (members of the workspace) and optionally posted to an integration.
CREATE TABLE analytics_reports (
    id BLOB PRIMARY KEY,
    workspace_id BLOB NOT NULL REFERENCES team_workspaces(id) ON DELETE CASCADE,
    owner_id BLOB NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    plugin_id TEXT NOT NULL,
    title TEXT NOT NULL,
    composition TEXT NOT NULL,
    schedule TEXT NOT NULL,
    next_run_at TEXT,
    integration_id TEXT,
    last_run_at TEXT,
    last_export_id BLOB,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX analytics_reports_due ON analytics_reports (next_run_at);
CREATE INDEX analytics_reports_by_workspace ON analytics_reports (workspace_id, id);
CREATE TABLE analytics_report_recipients (
    report_id BLOB NOT NULL REFERENCES analytics_reports(id) ON DELETE CASCADE,
    user_id BLOB NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    PRIMARY KEY (report_id, user_id)
);
CREATE INDEX analytics_report_recipients_by_user ON analytics_report_recipients (user_id);
ALTER TABLE analytics_exports ADD COLUMN report_id BLOB REFERENCES analytics_reports(id) ON DELETE SET NULL;
CREATE INDEX analytics_exports_by_report ON analytics_exports (report_id, id);
