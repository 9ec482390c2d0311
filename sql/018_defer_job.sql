-- A job the worker cannot run right now for a reason outside the job (YouTube's bot check answered every run so the
-- worker's breaker is open; Gemini refused the worker's key) goes back to PENDING until p_delay_ms from now without
-- counting the attempt: it neither burns its attempts nor fails. error_code / error_message say why it waits.
CREATE OR REPLACE FUNCTION glint_defer_job(p_id uuid, p_worker text, p_code text, p_message text, p_delay_ms bigint)
RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    IF p_delay_ms IS NULL OR p_delay_ms NOT BETWEEN 0 AND 86400000 THEN
        RAISE EXCEPTION 'glint_defer_job: bad delay' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    UPDATE analysis_jobs j SET status = 'PENDING', attempts = greatest(j.attempts - 1, 0), locked_by = NULL,
           lease_expires_at = NULL, run_after = clock_timestamp() + make_interval(secs => p_delay_ms / 1000.0),
           stage = 'deferred', error_code = left(p_code, 64), error_message = left(p_message, 1000),
           updated_at = clock_timestamp()
     WHERE j.id = p_id AND j.status = 'PROCESSING' AND j.locked_by = p_worker;
    RETURN CASE WHEN FOUND THEN 'PENDING' END;
END
$$;

-- ---- who may do what (sql/009's glint_access): a job that meets the bot-check breaker waits, attempt not counted ----
INSERT INTO glint_access (name, kind, definer) VALUES ('glint_defer_job', 'function', true) ON CONFLICT (name) DO NOTHING;
SELECT glint_apply_access();
