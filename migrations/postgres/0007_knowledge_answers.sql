-- Agents answer from knowledge: the citations of each reply, how often each document and
-- version was cited and how those answers were rated, and the questions knowledge missed.

ALTER TABLE chat_messages ADD COLUMN citations JSONB;
ALTER TABLE document_versions ADD COLUMN answer_count BIGINT NOT NULL DEFAULT 0;

CREATE TABLE knowledge_analytics (
    id UUID PRIMARY KEY,
    document_id UUID NOT NULL UNIQUE REFERENCES documents(id) ON DELETE CASCADE,
    workspace_id UUID NOT NULL REFERENCES team_workspaces(id) ON DELETE CASCADE,
    reference_count BIGINT NOT NULL DEFAULT 0,
    last_referenced TIMESTAMPTZ,
    effectiveness_score DOUBLE PRECISION,
    rating_sum BIGINT NOT NULL DEFAULT 0,
    rating_count BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX knowledge_analytics_by_workspace ON knowledge_analytics (workspace_id, reference_count);

CREATE TABLE knowledge_gaps (
    agent_id UUID NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    workspace_id UUID NOT NULL REFERENCES team_workspaces(id) ON DELETE CASCADE,
    question_key TEXT NOT NULL,
    example TEXT NOT NULL,
    occurrences BIGINT NOT NULL DEFAULT 0,
    confidence_sum DOUBLE PRECISION NOT NULL DEFAULT 0,
    last_seen TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (agent_id, question_key)
);
CREATE INDEX knowledge_gaps_by_workspace ON knowledge_gaps (workspace_id, occurrences);
