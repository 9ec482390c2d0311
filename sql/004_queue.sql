-- Job state transitions used by the worker and the API. Every one is guarded by the current status (and, for a
-- worker, by locked_by), so a late or repeated call is a harmless no-op.

-- Backoff for a rescued lease: 2^attempts seconds (capped at 5 minutes) with jitter.
CREATE OR REPLACE FUNCTION glint_backoff(p_attempts int) RETURNS interval LANGUAGE sql VOLATILE AS $$
    SELECT make_interval(secs => least(300, power(2, least(p_attempts, 16))) * (0.5 + random() / 2))
$$;

-- Ends a job this worker holds with an error. p_retry_ms NULL = permanent. A transient error goes back to PENDING
-- after p_retry_ms while attempts remain; otherwise FAILED with refund. Returns the new status, or NULL when the
-- worker no longer holds the job (cancelled, rescued by another worker).
CREATE OR REPLACE FUNCTION glint_fail_job(p_id uuid, p_worker text, p_code text, p_message text, p_retry_ms bigint)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    v_job analysis_jobs%ROWTYPE;
BEGIN
    SELECT * INTO v_job FROM analysis_jobs WHERE id = p_id AND status = 'PROCESSING' AND locked_by = p_worker FOR UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    IF p_retry_ms IS NOT NULL AND v_job.attempts < v_job.max_attempts THEN
        UPDATE analysis_jobs SET status = 'PENDING', run_after = clock_timestamp() + make_interval(secs => p_retry_ms / 1000.0),
               locked_by = NULL, lease_expires_at = NULL, stage = 'retry_wait', error_code = p_code,
               error_message = p_message, updated_at = clock_timestamp()
         WHERE id = p_id;
        RETURN 'PENDING';
    END IF;
    UPDATE analysis_jobs SET status = 'FAILED', finished_at = clock_timestamp(), lease_expires_at = NULL,
           error_code = p_code, error_message = p_message, updated_at = clock_timestamp()
     WHERE id = p_id;
    PERFORM glint_refund(p_id);
    RETURN 'FAILED';
END
$$;

-- Stores results and marks jobs COMPLETED, a batch in one statement (one transaction). p_batch is a JSON array of
-- {id, result, model, prompt_tokens, output_tokens, thoughts_tokens, timings}. Returns the ids completed; a job
-- missing from the answer was no longer held by this worker and nothing was stored for it.
CREATE OR REPLACE FUNCTION glint_complete_jobs(p_worker text, p_batch jsonb)
RETURNS SETOF uuid LANGUAGE sql AS $$
    WITH r AS (
        SELECT * FROM jsonb_to_recordset(p_batch)
                      AS r(id uuid, result jsonb, model text, prompt_tokens int, output_tokens int, thoughts_tokens int,
                           timings jsonb)
    ), done AS (
        UPDATE analysis_jobs j SET status = 'COMPLETED', finished_at = clock_timestamp(), lease_expires_at = NULL,
               stage = 'done', error_code = NULL, error_message = NULL, updated_at = clock_timestamp()
          FROM r WHERE j.id = r.id AND j.status = 'PROCESSING' AND j.locked_by = p_worker
        RETURNING j.id
    )
    INSERT INTO analysis_results (job_id, result, model, prompt_tokens, output_tokens, thoughts_tokens, timings)
    SELECT r.id, r.result, r.model, r.prompt_tokens, r.output_tokens, r.thoughts_tokens, r.timings
      FROM r JOIN done ON done.id = r.id
    ON CONFLICT (job_id) DO UPDATE SET result = EXCLUDED.result, model = EXCLUDED.model,
           prompt_tokens = EXCLUDED.prompt_tokens, output_tokens = EXCLUDED.output_tokens,
           thoughts_tokens = EXCLUDED.thoughts_tokens, timings = EXCLUDED.timings, created_at = clock_timestamp()
    RETURNING job_id
$$;

-- Cancels a PENDING or PROCESSING job: CANCELLED + refund + NOTIFY glint_cancel so the holder aborts.
-- Returns the job's status after the call and whether this call changed it; no row when the job does not exist.
CREATE OR REPLACE FUNCTION glint_cancel_job(p_id uuid, OUT status text, OUT changed boolean)
RETURNS SETOF record LANGUAGE plpgsql AS $$
DECLARE
    v_status text;
BEGIN
    SELECT j.status INTO v_status FROM analysis_jobs j WHERE j.id = p_id FOR UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF v_status NOT IN ('PENDING', 'PROCESSING') THEN
        status := v_status; changed := false;
        RETURN NEXT;
        RETURN;
    END IF;
    UPDATE analysis_jobs j SET status = 'CANCELLED', finished_at = clock_timestamp(), lease_expires_at = NULL,
           error_code = 'cancelled', error_message = 'Cancelled on request', updated_at = clock_timestamp()
     WHERE j.id = p_id;
    PERFORM glint_refund(p_id);
    PERFORM pg_notify('glint_cancel', p_id::text);
    status := 'CANCELLED'; changed := true;
    RETURN NEXT;
END
$$;

-- Rescues jobs whose worker stopped renewing its lease (crash, kill -9, partition): back to PENDING with backoff,
-- or FAILED + refund when attempts are used up. Safe to run from every worker at once (SKIP LOCKED).
CREATE OR REPLACE FUNCTION glint_reap_expired(p_limit int DEFAULT 100, OUT id uuid, OUT new_status text)
RETURNS SETOF record LANGUAGE plpgsql AS $$
DECLARE
    v_job record;
BEGIN
    FOR v_job IN
        SELECT j.id, j.attempts, j.max_attempts FROM analysis_jobs j
         WHERE j.status = 'PROCESSING' AND j.lease_expires_at < clock_timestamp()
         ORDER BY j.lease_expires_at LIMIT p_limit FOR UPDATE SKIP LOCKED
    LOOP
        id := v_job.id;
        IF v_job.attempts >= v_job.max_attempts THEN
            UPDATE analysis_jobs j SET status = 'FAILED', finished_at = clock_timestamp(), lease_expires_at = NULL,
                   error_code = 'worker_lost', error_message = 'The worker processing this job stopped responding',
                   updated_at = clock_timestamp()
             WHERE j.id = v_job.id;
            PERFORM glint_refund(v_job.id);
            new_status := 'FAILED';
        ELSE
            UPDATE analysis_jobs j SET status = 'PENDING', run_after = clock_timestamp() + glint_backoff(v_job.attempts - 1),
                   locked_by = NULL, lease_expires_at = NULL, stage = 'retry_wait', error_code = 'worker_lost',
                   error_message = 'The worker processing this job stopped responding; retrying',
                   updated_at = clock_timestamp()
             WHERE j.id = v_job.id;
            new_status := 'PENDING';
        END IF;
        RETURN NEXT;
    END LOOP;
END
$$;
