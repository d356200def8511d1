-- A document's `version` counts every change to it (its title, category, tags, agents or
-- content), so a write can say which it was based on (If-Match, or `version` in the body).
ALTER TABLE documents ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
