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

-- A refund gives back what the ledger says this job took from the balance (its charge and any adjustments), not what
-- credits_charged claims: a row inserted directly with credits_charged = 50 and no charge must not mint 50 credits
-- when it fails. Still exactly one refund row per job (delta 0 when nothing was charged), still the unique index
-- deciding races; creates the balance row when the user has none.
CREATE OR REPLACE FUNCTION glint_refund(p_job_id uuid) RETURNS int LANGUAGE plpgsql AS $$
DECLARE
    v_user uuid;
    v_delta int;
BEGIN
    INSERT INTO credit_ledger (user_id, job_id, delta, reason)
    SELECT j.user_id, j.id,
           greatest(0, -coalesce((SELECT sum(l.delta) FROM credit_ledger l
                                   WHERE l.job_id = j.id AND l.reason IN ('charge', 'adjust')), 0))::int,
           'refund'
      FROM analysis_jobs j WHERE j.id = p_job_id
    ON CONFLICT (job_id) WHERE reason = 'refund' DO NOTHING
    RETURNING user_id, delta INTO v_user, v_delta;
    IF v_user IS NULL THEN
        RETURN 0;
    END IF;
    IF v_delta > 0 THEN
        INSERT INTO user_credits (user_id, balance) VALUES (v_user, v_delta)
        ON CONFLICT (user_id) DO UPDATE SET balance = user_credits.balance + EXCLUDED.balance,
                                            updated_at = clock_timestamp();
    END IF;
    RETURN v_delta;
END
$$;
