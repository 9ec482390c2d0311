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

-- glint_apply_access as in 017, with glint_defer_job among the worker's definer functions.
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
                                       'glint_gemini_admit', 'glint_gemini_settle', 'glint_gemini_pause',
                                       -- 016: result reuse, guarded by status and locked_by like the others
                                       'glint_reuse_job',
                                       -- 017: retry (charges through the ledger), retention (advisory lock)
                                       'glint_retry_job', 'glint_purge_jobs',
                                       -- 018: a job that meets the bot-check breaker waits, attempt not counted
                                       'glint_defer_job'];
    v_worker_fns CONSTANT text[] := v_definer;
    v_service_fns CONSTANT text[] := ARRAY['glint_enqueue_job', 'glint_cancel_job', 'glint_credit_cost', 'glint_retry_job'];
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
