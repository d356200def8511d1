-- The invocation log is trimmed per installation (plugin and workspace), so one tenant's
-- calls never push another's out.
CREATE INDEX plugin_invocations_by_installation ON plugin_invocations (plugin_id, workspace_id, id);
