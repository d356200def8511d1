-- Lists start from what the caller can see (their memberships and shares), then read each
-- workspace's rows through its own (workspace_id, sort column) index. Instance-wide orderings
-- only invited the planner to walk every tenant's rows in sort order and filter them.
DROP INDEX projects_by_created;
DROP INDEX projects_by_updated;
DROP INDEX projects_by_name;
DROP INDEX chat_sessions_by_activity;
