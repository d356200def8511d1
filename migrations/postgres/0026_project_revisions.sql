-- Every change of a project's configuration is a revision: the configuration after it
-- (`config`: name, description, tags, status, settings, system prompt, model config, and the
-- provider without its key) and what changed (`changes`: {field: {from, to}}). Revision 1 is
-- the creation; projects made before this migration start from their current configuration.
CREATE TABLE project_revisions (
    project_id UUID NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    number BIGINT NOT NULL,
    version BIGINT NOT NULL,
    author_id UUID REFERENCES users(id) ON DELETE SET NULL,
    config JSONB NOT NULL,
    changes JSONB NOT NULL,
    restored_from BIGINT,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (project_id, number)
);
CREATE INDEX project_revisions_by_version ON project_revisions (project_id, version);

INSERT INTO project_revisions (project_id, number, version, author_id, config, changes,
    restored_from, created_at)
SELECT p.id, 1, p.version, p.owner_id,
    jsonb_build_object('name', p.name, 'description', p.description, 'tags', p.tags,
        'status', p.status, 'settings', p.settings, 'system_prompt', p.system_prompt,
        'model_config', p.model_config,
        'provider', CASE WHEN pp.project_id IS NULL THEN NULL ELSE jsonb_build_object(
            'base_url', pp.base_url, 'model', pp.model, 'stream', pp.stream,
            'timeout_ms', pp.timeout_ms, 'api_key_set', pp.api_key_encrypted IS NOT NULL)
        END),
    '{}'::jsonb, NULL, p.updated_at
FROM projects p LEFT JOIN project_providers pp ON pp.project_id = p.id;
