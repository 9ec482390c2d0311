-- Rows a buggy backend might insert. Constraints that every later UPDATE must also satisfy are dangerous here: a row
-- the claim cannot update makes the whole claim statement fail, every time (a poison pill). So insert-only rules go in
-- a trigger, and the column CHECKs of 001 (mode, status, credits_charged >= 0, max_attempts 1..100, NOT NULLs) stay
-- the only table constraints.

-- Refused at INSERT: a PROCESSING row (only a claim sets it; with no lease the reaper would never rescue it), a lock or
-- lease set by the inserter, and attempts beyond max_attempts (attempts + 1 in the claim could even overflow).
-- The WHEN clause keeps a well-formed bulk insert from calling any function.
CREATE OR REPLACE FUNCTION glint_refuse_job_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'analysis_jobs: a new job must not be PROCESSING, locked, leased, or past max_attempts'
        USING ERRCODE = 'check_violation', HINT = 'insert only user_id, video_url and mode (or call glint_enqueue_job)';
END
$$;

DROP TRIGGER IF EXISTS analysis_jobs_insert_guard ON analysis_jobs;
CREATE TRIGGER analysis_jobs_insert_guard
    BEFORE INSERT ON analysis_jobs
    FOR EACH ROW WHEN (NEW.status = 'PROCESSING' OR NEW.locked_by IS NOT NULL OR NEW.lease_expires_at IS NOT NULL
                       OR NEW.attempts > NEW.max_attempts)
    EXECUTE FUNCTION glint_refuse_job_insert();
