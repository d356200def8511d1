-- Agents answer from knowledge: the citations of each reply, how often each document and
-- version was cited and how those answers were rated, and the questions knowledge missed.

ALTER TABLE chat_messages ADD COLUMN citations TEXT;
ALTER TABLE document_versions ADD COLUMN answer_count INTEGER NOT NULL DEFAULT 0;

CREATE TABLE knowledge_analytics (
    id BLOB PRIMARY KEY,
    document_id BLOB NOT NULL UNIQUE REFERENCES documents(id) ON DELETE CASCADE,
    workspace_id BLOB NOT NULL REFERENCES team_workspaces(id) ON DELETE CASCADE,
    reference_count INTEGER NOT NULL DEFAULT 0,
    last_referenced TEXT,
    effectiveness_score REAL,
    rating_sum INTEGER NOT NULL DEFAULT 0,
    rating_count INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX knowledge_analytics_by_workspace ON knowledge_analytics (workspace_id, reference_count);

CREATE TABLE knowledge_gaps (
    agent_id BLOB NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    workspace_id BLOB NOT NULL REFERENCES team_workspaces(id) ON DELETE CASCADE,
    question_key TEXT NOT NULL,
    example TEXT NOT NULL,
    occurrences INTEGER NOT NULL DEFAULT 0,
    confidence_sum REAL NOT NULL DEFAULT 0,
    last_seen TEXT NOT NULL,
    PRIMARY KEY (agent_id, question_key)
);
CREATE INDEX knowledge_gaps_by_workspace ON knowledge_gaps (workspace_id, occurrences);
