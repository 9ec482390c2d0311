-- Credits: costs, charge-and-enqueue for the backend, and the one refund path every failure goes through.

-- standard = 1 credit; deep = 15 credits per started 5 minutes (one block when the duration is not known yet).
CREATE OR REPLACE FUNCTION glint_credit_cost(p_mode text, p_duration_seconds numeric DEFAULT NULL)
RETURNS int LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN p_mode = 'deep' THEN 15 * greatest(1, ceil(coalesce(p_duration_seconds, 0) / 300.0))::int
        ELSE 1
    END
$$;

-- Charges the user and enqueues the job in one transaction. Raises 'insufficient_credits' (SQLSTATE P0001)
-- when the balance does not cover the cost; nothing is written then.
CREATE OR REPLACE FUNCTION glint_enqueue_job(p_user_id uuid, p_video_url text, p_mode text DEFAULT 'standard',
                                             p_duration_seconds numeric DEFAULT NULL)
RETURNS uuid LANGUAGE plpgsql AS $$
DECLARE
    v_cost int := glint_credit_cost(p_mode, p_duration_seconds);
    v_id uuid;
BEGIN
    UPDATE user_credits SET balance = balance - v_cost, updated_at = clock_timestamp()
     WHERE user_id = p_user_id AND balance >= v_cost;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'insufficient_credits' USING DETAIL = format('cost %s credits', v_cost);
    END IF;
    INSERT INTO analysis_jobs (user_id, video_url, mode, credits_charged)
    VALUES (p_user_id, p_video_url, p_mode, v_cost) RETURNING id INTO v_id;
    INSERT INTO credit_ledger (user_id, job_id, delta, reason) VALUES (p_user_id, v_id, -v_cost, 'charge');
    RETURN v_id;
END
$$;

-- Gives a job's credits back, at most once per job (the unique index on refunds decides races): what the ledger says
-- this job took from the balance (its charge and any adjustments), not what credits_charged claims, so a row inserted
-- directly with credits_charged = 50 and no charge cannot mint 50 credits when it fails. Exactly one refund row per
-- job (delta 0 when nothing was charged); creates the balance row when the user has none. Must run in the same
-- transaction as the status change that justifies it. Returns the credits refunded.
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
