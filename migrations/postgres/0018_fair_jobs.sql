-- Jobs are taken turn by turn between the users who started them: a job's turn is how many
-- of its owner's jobs were outstanding when it was queued, and workers take the lowest turn
-- first, so one user's thousand exports do not hold back everyone else's first upload.
ALTER TABLE jobs ADD COLUMN owner_id UUID;
ALTER TABLE jobs ADD COLUMN turn BIGINT NOT NULL DEFAULT 0;
DROP INDEX jobs_ready;
CREATE INDEX jobs_by_turn ON jobs (status, turn, created_at);
CREATE INDEX jobs_by_owner ON jobs (owner_id, status);
