-- Workflow runs. A workflow row says how it starts by itself (its trigger's kind, the event
-- type it listens to, when its schedule fires next), so triggers find it by index.
ALTER TABLE workflows ADD COLUMN trigger_kind TEXT NOT NULL DEFAULT 'manual';
ALTER TABLE workflows ADD COLUMN trigger_event_type TEXT;
ALTER TABLE workflows ADD COLUMN next_fire_at TIMESTAMPTZ;
ALTER TABLE workflows ADD COLUMN webhook_secret_encrypted TEXT;
CREATE INDEX workflows_by_event ON workflows (trigger_event_type, workspace_id) WHERE is_active;
CREATE INDEX workflows_by_schedule ON workflows (next_fire_at) WHERE next_fire_at IS NOT NULL;

-- A run is its own queue entry: `due_at` is when an executor should take it up (now when
-- queued, the end of the holder's lease while running, the next timer while waiting, NULL
-- once finished), and `claim` the holder. `wakeups` counts what changed a run from outside
-- (a resume, a cancel) so an executor never parks a run over news it has not read.
CREATE TABLE workflow_runs (
    id UUID PRIMARY KEY,
    workflow_id UUID NOT NULL REFERENCES workflows(id) ON DELETE CASCADE,
    workspace_id UUID NOT NULL REFERENCES team_workspaces(id) ON DELETE CASCADE,
    version BIGINT NOT NULL,
    status TEXT NOT NULL,
    trigger TEXT NOT NULL,
    input JSONB NOT NULL,
    output JSONB,
    error TEXT,
    dry_run BOOLEAN NOT NULL,
    started_by UUID REFERENCES users(id) ON DELETE SET NULL,
    event_id UUID,
    due_at TIMESTAMPTZ,
    claim UUID,
    wakeups BIGINT NOT NULL DEFAULT 0,
    depth BIGINT NOT NULL DEFAULT 0,
    created_at TIMESTAMPTZ NOT NULL,
    started_at TIMESTAMPTZ,
    finished_at TIMESTAMPTZ,
    updated_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX workflow_runs_due ON workflow_runs (due_at) WHERE due_at IS NOT NULL;
CREATE INDEX workflow_runs_by_workflow ON workflow_runs (workflow_id, id);
CREATE INDEX workflow_runs_active ON workflow_runs (workspace_id)
    WHERE status IN ('queued', 'running', 'waiting');
CREATE UNIQUE INDEX workflow_runs_by_event ON workflow_runs (workflow_id, event_id)
    WHERE event_id IS NOT NULL;

CREATE TABLE workflow_run_nodes (
    run_id UUID NOT NULL REFERENCES workflow_runs(id) ON DELETE CASCADE,
    node_id TEXT NOT NULL,
    node_type TEXT NOT NULL,
    position BIGINT NOT NULL,
    status TEXT NOT NULL,
    branch TEXT,
    input JSONB,
    output JSONB,
    error TEXT,
    attempts BIGINT NOT NULL DEFAULT 0,
    wake_at TIMESTAMPTZ,
    started_at TIMESTAMPTZ,
    finished_at TIMESTAMPTZ,
    duration_ms DOUBLE PRECISION,
    PRIMARY KEY (run_id, node_id)
);
