-- A workflow whose trigger says `reply: true` answers its agent's chat sessions: chat finds it
-- by the agent, and one active workflow at most answers an agent.
ALTER TABLE workflows ADD COLUMN answers_project_id UUID REFERENCES projects(id) ON DELETE SET NULL;
CREATE UNIQUE INDEX workflows_answering ON workflows (answers_project_id);
