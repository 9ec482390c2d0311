-- Deep mode: remote Files API objects per job (so a crash never leaks one) and the credit reconcile once the
-- video's duration is known.

-- One row per upload attempt, written before the upload starts. file_name is filled in once the upload is final;
-- the row is deleted when the DELETE of the remote file succeeded. Rows whose job is no longer PROCESSING under a live
-- lease are leftovers of a crash: a worker deletes their files at start and periodically.
CREATE TABLE IF NOT EXISTS glint_remote_files (
    job_id       uuid NOT NULL REFERENCES analysis_jobs (id) ON DELETE CASCADE,
    display_name text NOT NULL,
    file_name    text,
    worker       text,
    created_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (job_id, display_name)
);

-- Charges (or gives back) the difference between a deep job's charge and its cost for the real duration, in one
-- transaction, only when the balance allows it: never a negative balance. Guarded like glint_fail_job (the job must be
-- PROCESSING under this worker). Returns 'unchanged', 'charged', 'adjusted' (credits given back), 'insufficient'
-- (nothing written: the caller fails the job, whose refund gives back what was charged), 'unmetered' (the job was
-- never charged: inserted directly, not through glint_enqueue_job) or NULL (job not ours).
CREATE OR REPLACE FUNCTION glint_reconcile_credits(p_id uuid, p_worker text, p_duration_seconds numeric)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    v_job analysis_jobs%ROWTYPE;
    v_cost int;
    v_diff int;
BEGIN
    SELECT * INTO v_job FROM analysis_jobs WHERE id = p_id AND status = 'PROCESSING' AND locked_by = p_worker FOR UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    -- a job inserted without glint_enqueue_job (no charge in the ledger) is not metered here
    IF NOT EXISTS (SELECT 1 FROM credit_ledger WHERE job_id = p_id AND reason = 'charge') THEN
        RETURN 'unmetered';
    END IF;
    v_cost := glint_credit_cost(v_job.mode, p_duration_seconds);
    v_diff := v_cost - v_job.credits_charged;
    IF v_diff = 0 THEN
        RETURN 'unchanged';
    END IF;
    IF v_diff > 0 THEN
        UPDATE user_credits SET balance = balance - v_diff, updated_at = clock_timestamp()
         WHERE user_id = v_job.user_id AND balance >= v_diff;
        IF NOT FOUND THEN
            RETURN 'insufficient';
        END IF;
    ELSE
        INSERT INTO user_credits (user_id, balance) VALUES (v_job.user_id, -v_diff)
        ON CONFLICT (user_id) DO UPDATE SET balance = user_credits.balance + EXCLUDED.balance,
                                            updated_at = clock_timestamp();
    END IF;
    UPDATE analysis_jobs SET credits_charged = v_cost, updated_at = clock_timestamp() WHERE id = p_id;
    INSERT INTO credit_ledger (user_id, job_id, delta, reason)
    VALUES (v_job.user_id, p_id, -v_diff, CASE WHEN v_diff > 0 THEN 'charge' ELSE 'adjust' END);
    RETURN CASE WHEN v_diff > 0 THEN 'charged' ELSE 'adjusted' END;
END
$$;
