-- The deep-capped claim (sql/019), made cheap when it does not bind. Over the claim index, its search for PENDING deep
-- jobs read every PENDING row whenever few or none were deep: a scan of the whole queue per claim. The partial index
-- below holds exactly those candidates, so that search reads at most p_deep_limit rows, and when no deep job is
-- runnable the claim takes the plain one-statement path of sql/017 instead of two locking scans, a union and a sort.
-- The capped path still filters deep rows out of the claim index: it reads past at most the deep jobs queued ahead.
CREATE INDEX IF NOT EXISTS analysis_jobs_claim_deep_idx ON analysis_jobs (priority DESC, run_after)
    WHERE status = 'PENDING' AND mode = 'deep';

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
    -- no deep job may be taken, or none is runnable (the partial index answers in microseconds): standard jobs only, one
    -- scan. A deep job committed after the check is left for the next claim (its insert notifies), never over the cap.
    IF p_deep_limit = 0
       OR NOT EXISTS (SELECT 1 FROM analysis_jobs a WHERE a.status = 'PENDING' AND a.mode = 'deep' AND a.run_after <= now()) THEN
        RETURN QUERY
        UPDATE analysis_jobs j SET status = 'PROCESSING', locked_by = p_worker, attempts = j.attempts + 1,
               started_at = clock_timestamp(), lease_expires_at = clock_timestamp() + make_interval(secs => p_lease_seconds),
               stage = 'claimed', updated_at = clock_timestamp()
         WHERE j.id = ANY(ARRAY(SELECT a.id FROM analysis_jobs a
                                 WHERE a.status = 'PENDING' AND a.run_after <= now() AND a.mode IS DISTINCT FROM 'deep'
                                 ORDER BY a.priority DESC, a.run_after LIMIT p_limit FOR UPDATE SKIP LOCKED))
        RETURNING j.id, j.user_id, j.video_url, j.mode, j.attempts, j.max_attempts, j.credits_charged;
        RETURN;
    END IF;
    -- each candidate set is locked in its own CTE (FOR UPDATE is not allowed under UNION); the oldest p_limit of both win
    RETURN QUERY
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
