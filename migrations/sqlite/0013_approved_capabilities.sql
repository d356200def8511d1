-- An installation's approval covers the capabilities it was approved with, not only the
-- package's digest: a re-upload of the same bytes asking for more waits for a new approval.
ALTER TABLE plugin_installations ADD COLUMN approved_capabilities TEXT NOT NULL DEFAULT '[]';
UPDATE plugin_installations SET approved_capabilities = COALESCE(
    (SELECT json_extract(p.manifest, '$.capabilities') FROM plugins p WHERE p.id = plugin_id), '[]');
