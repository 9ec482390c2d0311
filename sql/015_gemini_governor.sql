-- The Gemini quota governor (handlers/governor.c): one row per model, shared by every worker instance.
--
-- Gemini's quotas (requests and tokens per minute) belong to the project and model, not to a process. Each worker asks
-- glint_gemini_admit before a generateContent call; the answer is a reservation: "go in wait_ms". Reservations are
-- spaced evenly (GCRA, a leaky bucket without burst): request k+1 may start window/rpm after request k, and a call of
-- n estimated tokens pushes the token schedule by n * window/tpm. Even spacing keeps any sliding window of one
-- `window` under the limit, whichever way the server counts. One locked row, one call, one round trip.
--   next_request_at  earliest start of the next request under the RPM limit ('-infinity' = now)
--   next_token_at    same for the TPM limit; glint_gemini_settle moves it by (real - estimated) tokens afterwards
--   paused_until     a 429 with RetryInfo.retryDelay seen by any worker: nobody starts a call before then
--   requests, tokens admitted totals (estimate, corrected by settle), for operators
-- The worker (glint_worker) reaches the table only through the three SECURITY DEFINER functions below.

CREATE TABLE IF NOT EXISTS glint_gemini_budget (
    model           text PRIMARY KEY,
    next_request_at timestamptz NOT NULL DEFAULT '-infinity',
    next_token_at   timestamptz NOT NULL DEFAULT '-infinity',
    paused_until    timestamptz NOT NULL DEFAULT '-infinity',
    requests        bigint NOT NULL DEFAULT 0,
    tokens          bigint NOT NULL DEFAULT 0,
    updated_at      timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- Milliseconds from p_now until p_at, rounded up; 0 when p_at is not later.
CREATE OR REPLACE FUNCTION glint_gemini_ms_until(p_at timestamptz, p_now timestamptz) RETURNS integer
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, public AS $$
    SELECT CASE WHEN p_at <= p_now THEN 0
                ELSE least(ceil(extract(epoch FROM p_at - p_now) * 1000), 2147483647)::integer END
$$;

-- A reservation for one call of p_est_tokens under p_rpm requests and p_tpm tokens per p_window_ms (0 = no limit).
-- admitted: the slot is held, start in wait_ms. Not admitted: the model is paused, nothing was reserved; ask again in
-- wait_ms. Without limits only the pause is read (no row is written or locked).
CREATE OR REPLACE FUNCTION glint_gemini_admit(p_model text, p_est_tokens bigint, p_rpm integer, p_tpm bigint,
                                              p_window_ms integer, OUT admitted boolean, OUT wait_ms integer)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    v_now timestamptz := clock_timestamp();
    v_window interval := make_interval(secs => greatest(p_window_ms, 1) / 1000.0);
    v_est bigint := greatest(coalesce(p_est_tokens, 0), 0);
    b public.glint_gemini_budget%ROWTYPE;
    v_at timestamptz;
BEGIN
    IF coalesce(p_rpm, 0) <= 0 AND coalesce(p_tpm, 0) <= 0 THEN
        SELECT * INTO b FROM public.glint_gemini_budget WHERE model = p_model;
        wait_ms := public.glint_gemini_ms_until(coalesce(b.paused_until, '-infinity'), v_now);
        admitted := wait_ms = 0;
        RETURN;
    END IF;
    INSERT INTO public.glint_gemini_budget (model) VALUES (p_model) ON CONFLICT (model) DO NOTHING;
    SELECT * INTO b FROM public.glint_gemini_budget WHERE model = p_model FOR UPDATE;
    IF b.paused_until > v_now THEN
        admitted := false;
        wait_ms := public.glint_gemini_ms_until(b.paused_until, v_now);
        RETURN;
    END IF;
    v_at := greatest(v_now, CASE WHEN p_rpm > 0 THEN b.next_request_at ELSE '-infinity' END,
                     CASE WHEN p_tpm > 0 THEN b.next_token_at ELSE '-infinity' END);
    UPDATE public.glint_gemini_budget
       SET next_request_at = CASE WHEN p_rpm > 0 THEN v_at + v_window / p_rpm ELSE next_request_at END,
           next_token_at = CASE WHEN p_tpm > 0 THEN v_at + v_window * (v_est::double precision / p_tpm)
                                ELSE next_token_at END,
           requests = requests + 1, tokens = tokens + v_est, updated_at = v_now
     WHERE model = p_model;
    admitted := true;
    wait_ms := public.glint_gemini_ms_until(v_at, v_now);
END
$$;

-- After the call: p_delta_tokens = real - estimated (negative gives back what was over-reserved).
CREATE OR REPLACE FUNCTION glint_gemini_settle(p_model text, p_delta_tokens bigint, p_tpm bigint, p_window_ms integer)
RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    UPDATE public.glint_gemini_budget
       SET next_token_at = CASE WHEN p_tpm > 0 AND next_token_at > '-infinity'
                                THEN next_token_at + make_interval(secs => greatest(p_window_ms, 1) / 1000.0)
                                                     * (p_delta_tokens::double precision / p_tpm)
                                ELSE next_token_at END,
           tokens = greatest(tokens + p_delta_tokens, 0), updated_at = clock_timestamp()
     WHERE model = p_model
$$;

-- A 429 with RetryInfo.retryDelay: nobody (in any instance) starts a call to this model for p_ms from now.
CREATE OR REPLACE FUNCTION glint_gemini_pause(p_model text, p_ms integer) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    INSERT INTO public.glint_gemini_budget AS b (model, paused_until)
    VALUES (p_model, clock_timestamp() + make_interval(secs => greatest(p_ms, 0) / 1000.0))
    ON CONFLICT (model) DO UPDATE
       SET paused_until = greatest(b.paused_until, EXCLUDED.paused_until), updated_at = clock_timestamp()
$$;

-- ---- who may do what ----

-- sql/009's glint_apply_access() with the governor's objects added: glint_gemini_budget has RLS and no grant or policy
-- for any role (the worker reaches it only through the three definer functions, which only glint_worker may execute);
-- glint_gemini_ms_until is a helper no role may call. Everything else is as in 009.
CREATE OR REPLACE FUNCTION glint_apply_access() RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_schema text := current_schema();
    -- table => grants per role (glint_worker's are also its RLS policies); every glint table must be listed here
    v_tables CONSTANT text[][] := ARRAY[
        -- table               authenticated  service_role                     glint_worker
        ['analysis_jobs',      'SELECT',      'SELECT, INSERT, UPDATE, DELETE', 'SELECT'],
        ['analysis_results',   'SELECT',      'SELECT, DELETE',                 'SELECT'],
        ['user_credits',       'SELECT',      'SELECT, INSERT, UPDATE',         ''],
        ['credit_ledger',      'SELECT',      'SELECT, INSERT',                 ''],
        ['glint_remote_files', '',            'SELECT',                         'SELECT, INSERT, DELETE'],
        ['glint_migrations',   '',            '',                               ''],
        ['glint_gemini_budget', '',           '',                               '']]; -- 015: through the definer functions
    -- SECURITY DEFINER: they act on rows their caller may not touch, each guarded by status and locked_by
    v_definer CONSTANT text[] := ARRAY['glint_claim_jobs', 'glint_heartbeat', 'glint_set_stage', 'glint_release_jobs',
                                       'glint_complete_jobs', 'glint_fail_job', 'glint_cancel_job', 'glint_reap_expired',
                                       'glint_reconcile_credits',
                                       -- 015: the Gemini quota row of a model, reached by no role directly
                                       'glint_gemini_admit', 'glint_gemini_settle', 'glint_gemini_pause'];
    v_worker_fns CONSTANT text[] := v_definer;
    v_service_fns CONSTANT text[] := ARRAY['glint_enqueue_job', 'glint_cancel_job', 'glint_credit_cost'];
    v_user_fns CONSTANT text[] := ARRAY['glint_credit_cost'];
    -- what a signed-in user sees: rows whose user_id is auth.uid(), results through their job
    v_own CONSTANT text := 'user_id = (SELECT auth.uid())';
    v_supabase boolean := to_regrole('authenticated') IS NOT NULL AND to_regprocedure('auth.uid()') IS NOT NULL;
    t text[];
    f record;
    r text;
BEGIN
    FOREACH t SLICE 1 IN ARRAY v_tables LOOP
        CONTINUE WHEN to_regclass(format('%I.%I', v_schema, t[1])) IS NULL;
        EXECUTE format('ALTER TABLE %I.%I ENABLE ROW LEVEL SECURITY', v_schema, t[1]);
        EXECUTE format('REVOKE ALL ON %I.%I FROM PUBLIC, glint_worker', v_schema, t[1]);
        FOREACH r IN ARRAY ARRAY['anon', 'authenticated', 'service_role'] LOOP
            CONTINUE WHEN to_regrole(r) IS NULL;
            EXECUTE format('REVOKE ALL ON %I.%I FROM %I', v_schema, t[1], r);
        END LOOP;
        IF t[2] <> '' AND v_supabase THEN
            EXECUTE format('GRANT %s ON %I.%I TO authenticated', t[2], v_schema, t[1]);
        END IF;
        IF t[3] <> '' AND to_regrole('service_role') IS NOT NULL THEN
            EXECUTE format('GRANT %s ON %I.%I TO service_role', t[3], v_schema, t[1]);
        END IF;
        IF t[4] <> '' THEN
            EXECUTE format('GRANT %s ON %I.%I TO glint_worker', t[4], v_schema, t[1]);
        END IF;
        -- policies: one per role and table (several permissive ones per role would all be evaluated)
        EXECUTE format('DROP POLICY IF EXISTS glint_worker_access ON %I.%I', v_schema, t[1]);
        IF t[4] <> '' THEN
            EXECUTE format('CREATE POLICY glint_worker_access ON %I.%I FOR %s TO glint_worker USING (true)%s', v_schema, t[1],
                           CASE WHEN t[4] = 'SELECT' THEN 'SELECT' ELSE 'ALL' END,
                           CASE WHEN t[4] = 'SELECT' THEN '' ELSE ' WITH CHECK (true)' END);
        END IF;
        EXECUTE format('DROP POLICY IF EXISTS glint_own_rows ON %I.%I', v_schema, t[1]);
        IF t[2] <> '' AND v_supabase THEN
            EXECUTE format('CREATE POLICY glint_own_rows ON %I.%I FOR SELECT TO authenticated USING (%s)', v_schema, t[1],
                           CASE t[1] WHEN 'analysis_results'
                               THEN format('EXISTS (SELECT 1 FROM %I.analysis_jobs j WHERE j.id = job_id AND j.%s)', v_schema, v_own)
                               ELSE v_own END);
        END IF;
    END LOOP;
    -- the worker's one column update on its own bookkeeping table
    IF to_regclass(format('%I.glint_remote_files', v_schema)) IS NOT NULL THEN
        EXECUTE format('GRANT UPDATE (file_name) ON %I.glint_remote_files TO glint_worker', v_schema);
    END IF;
    -- sequences: only the backend inserts ledger rows itself
    FOR f IN SELECT c.oid::regclass AS seq FROM pg_class c
              WHERE c.relkind = 'S' AND c.relnamespace = v_schema::regnamespace
                AND EXISTS (SELECT 1 FROM pg_depend d JOIN pg_class t ON t.oid = d.refobjid
                             WHERE d.objid = c.oid AND d.deptype = 'a' AND t.relname = ANY (SELECT x FROM unnest(v_tables[:][1:1]) x))
    LOOP
        EXECUTE format('REVOKE ALL ON SEQUENCE %s FROM PUBLIC', f.seq);
        FOREACH r IN ARRAY ARRAY['anon', 'authenticated', 'service_role'] LOOP
            CONTINUE WHEN to_regrole(r) IS NULL;
            EXECUTE format('REVOKE ALL ON SEQUENCE %s FROM %I', f.seq, r);
        END LOOP;
        IF to_regrole('service_role') IS NOT NULL THEN
            EXECUTE format('GRANT USAGE, SELECT ON SEQUENCE %s TO service_role', f.seq);
        END IF;
    END LOOP;
    -- functions: pinned search_path for all (pg_temp last: a temporary object never shadows ours), definer where listed,
    -- EXECUTE only for the roles listed
    FOR f IN SELECT p.oid::regprocedure AS sig, p.proname FROM pg_proc p
              WHERE p.pronamespace = v_schema::regnamespace AND p.proname LIKE 'glint\_%'
    LOOP
        EXECUTE format('ALTER FUNCTION %s %s SET search_path = %I, pg_temp', f.sig,
                       CASE WHEN f.proname = ANY(v_definer) THEN 'SECURITY DEFINER' ELSE 'SECURITY INVOKER' END, v_schema);
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC, glint_worker', f.sig);
        FOREACH r IN ARRAY ARRAY['anon', 'authenticated', 'service_role'] LOOP
            CONTINUE WHEN to_regrole(r) IS NULL;
            EXECUTE format('REVOKE ALL ON FUNCTION %s FROM %I', f.sig, r);
        END LOOP;
        IF f.proname = ANY(v_worker_fns) THEN
            EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO glint_worker', f.sig);
        END IF;
        IF f.proname = ANY(v_service_fns) AND to_regrole('service_role') IS NOT NULL THEN
            EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO service_role', f.sig);
        END IF;
        IF f.proname = ANY(v_user_fns) AND v_supabase THEN
            EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO authenticated', f.sig);
        END IF;
    END LOOP;
END
$$;

SELECT glint_apply_access();
