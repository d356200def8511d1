-- What an author needs to see of a call: the lines the plugin logged and its output, both
-- bounded (100 lines or 16 KiB of log; 16 KiB of output, else a note of its size).
ALTER TABLE plugin_invocations ADD COLUMN logs JSONB;
ALTER TABLE plugin_invocations ADD COLUMN output JSONB;
