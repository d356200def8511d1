-- Every change of a project's configuration is a revision: the configuration after it
-- (`config`: name, description, tags, status, settings, system prompt, model config, and the
-- provider without its key) and what changed (`changes`: {field: {from, to}}). Revision 1 is
-- the creation; projects made before this migration start from their current configuration.
CREATE TABLE project_revisions (
    project_id BLOB NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    number INTEGER NOT NULL,
    version INTEGER NOT NULL,
    author_id BLOB REFERENCES users(id) ON DELETE SET NULL,
    config TEXT NOT NULL,
    changes TEXT NOT NULL,
    restored_from INTEGER,
    created_at TEXT NOT NULL,
    PRIMARY KEY (project_id, number)
);
CREATE INDEX project_revisions_by_version ON project_revisions (project_id, version);

INSERT INTO project_revisions (project_id, number, version, author_id, config, changes,
    restored_from, created_at)
SELECT p.id, 1, p.version, p.owner_id,
    json_object('name', p.name, 'description', p.description, 'tags', json(p.tags),
        'status', p.status, 'settings', json(p.settings), 'system_prompt', p.system_prompt,
        'model_config', json(p.model_config),
        'provider', json(CASE WHEN pp.project_id IS NULL THEN NULL ELSE json_object(
            'base_url', pp.base_url, 'model', pp.model,
            'stream', json(CASE WHEN pp.stream THEN 'true' ELSE 'false' END),
            'timeout_ms', pp.timeout_ms,
            'api_key_set', json(CASE WHEN pp.api_key_encrypted IS NULL THEN 'false' ELSE 'true' END))
        END)),
    '{}', NULL, p.updated_at
FROM projects p LEFT JOIN project_providers pp ON pp.project_id = p.id;
