-- Disk budget and deep-job cap (issue 12): the claim takes how many deep jobs this batch may include. The worker passes
-- 0 while MAX_CONCURRENT_DEEP_JOBS deep jobs are in flight or WORK_DIR's free space does not cover another download;
-- deep jobs then stay PENDING (never failed for space) while standard jobs behind them are still claimed. Still one
-- statement per batch. The three-argument version (sql/009) stays for workers not yet upgraded.
CREATE OR REPLACE FUNCTION glint_claim_jobs(p_worker text, p_lease_seconds int, p_limit int, p_deep_limit int)
RETURNS TABLE (job_id uuid, job_user_id uuid, job_video_url text, job_mode text, job_attempts int, job_max_attempts int,
               job_credits_charged int)
LANGUAGE plpgsql AS $$
BEGIN
    IF coalesce(p_worker, '') = '' OR p_lease_seconds NOT BETWEEN 1 AND 86400 OR p_limit NOT BETWEEN 1 AND 10000
       OR p_deep_limit NOT BETWEEN 0 AND 10000 THEN
        RAISE EXCEPTION 'glint_claim_jobs: bad arguments' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_deep_limit >= p_limit THEN -- no cap within this batch: the plain claim
        RETURN QUERY SELECT * FROM glint_claim_jobs(p_worker, p_lease_seconds, p_limit);
        RETURN;
    END IF;
    -- each candidate set is locked in its own CTE (FOR UPDATE is not allowed under UNION); the oldest p_limit of both win
    RETURN QUERY
    -- priority first, as in 017's claim
    WITH d AS (SELECT a.id, a.priority, a.run_after FROM analysis_jobs a
                WHERE p_deep_limit > 0 AND a.status = 'PENDING' AND a.run_after <= now() AND a.mode = 'deep'
                ORDER BY a.priority DESC, a.run_after LIMIT p_deep_limit FOR UPDATE SKIP LOCKED),
         s AS (SELECT a.id, a.priority, a.run_after FROM analysis_jobs a
                WHERE a.status = 'PENDING' AND a.run_after <= now() AND a.mode IS DISTINCT FROM 'deep'
                ORDER BY a.priority DESC, a.run_after LIMIT p_limit FOR UPDATE SKIP LOCKED),
         c AS (SELECT d.id, d.priority, d.run_after FROM d UNION ALL SELECT s.id, s.priority, s.run_after FROM s
                ORDER BY 2 DESC, 3 LIMIT p_limit)
    UPDATE analysis_jobs j SET status = 'PROCESSING', locked_by = p_worker, attempts = j.attempts + 1,
           started_at = clock_timestamp(), lease_expires_at = clock_timestamp() + make_interval(secs => p_lease_seconds),
           stage = 'claimed', updated_at = clock_timestamp()
     WHERE j.id = ANY(ARRAY(SELECT c.id FROM c))
    RETURNING j.id, j.user_id, j.video_url, j.mode, j.attempts, j.max_attempts, j.credits_charged;
END
$$;

SELECT glint_apply_access();
