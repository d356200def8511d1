-- Composed reports: which sections, agents and days an export covers (null: the report
-- before it could be composed, performance of every agent over its time_range).
ALTER TABLE analytics_exports ADD COLUMN composition JSONB;
