-- Each claim of a job carries a token: a worker renews its lease and records the outcome
-- only while the job is still its own (a worker whose lease ran out must not finish a job
-- another worker has taken up).
ALTER TABLE jobs ADD COLUMN claim UUID;
UPDATE jobs SET claim = id;
