-- Safe on a Supabase project (docs/supabase.md) and the same on plain PostgreSQL:
--   * row-level security on every table; explicit grants instead of whatever default privileges handed out;
--   * anon: nothing. authenticated (a signed-in user; policies only where auth.uid() exists): SELECT of its own jobs,
--     results, balance and ledger, nothing else. service_role (the backend): enqueue, cancel, read, top up credits;
--   * glint_worker no longer UPDATEs analysis_jobs: claim, heartbeat, stage, release go through SECURITY DEFINER
--     functions below, each guarded by status and locked_by (column grants could not restrict the values it wrote);
--   * every glint function has a pinned search_path; definer functions are executable only by the roles meant to.
-- Nothing here needs a superuser (on Supabase `postgres` is not one): the owner enables RLS, writes policies and
-- grants on its own objects. Later migrations that add objects end with SELECT glint_apply_access().

-- ---- the worker's transitions ----

-- Claims up to p_limit runnable jobs for p_worker: one statement per batch, SKIP LOCKED so workers never wait on each
-- other. = ANY(ARRAY(...)) rather than a join: a join is planned as a hash join over the whole table.
CREATE OR REPLACE FUNCTION glint_claim_jobs(p_worker text, p_lease_seconds int, p_limit int)
RETURNS TABLE (job_id uuid, job_user_id uuid, job_video_url text, job_mode text, job_attempts int, job_max_attempts int,
               job_credits_charged int)
LANGUAGE plpgsql AS $$
BEGIN
    IF coalesce(p_worker, '') = '' OR p_lease_seconds NOT BETWEEN 1 AND 86400 OR p_limit NOT BETWEEN 1 AND 10000 THEN
        RAISE EXCEPTION 'glint_claim_jobs: bad arguments' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN QUERY
    UPDATE analysis_jobs j SET status = 'PROCESSING', locked_by = p_worker, attempts = j.attempts + 1,
           started_at = clock_timestamp(), lease_expires_at = clock_timestamp() + make_interval(secs => p_lease_seconds),
           stage = 'claimed', updated_at = clock_timestamp()
     WHERE j.id = ANY(ARRAY(SELECT a.id FROM analysis_jobs a WHERE a.status = 'PENDING' AND a.run_after <= now()
                            ORDER BY a.run_after LIMIT p_limit FOR UPDATE SKIP LOCKED))
    RETURNING j.id, j.user_id, j.video_url, j.mode, j.attempts, j.max_attempts, j.credits_charged;
END
$$;

-- Renews the leases of the jobs p_worker still holds; returns those ids (a missing one was cancelled or rescued).
CREATE OR REPLACE FUNCTION glint_heartbeat(p_ids uuid[], p_worker text, p_lease_seconds int)
RETURNS SETOF uuid LANGUAGE plpgsql AS $$
BEGIN
    IF p_lease_seconds NOT BETWEEN 1 AND 86400 THEN
        RAISE EXCEPTION 'glint_heartbeat: bad lease' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN QUERY
    UPDATE analysis_jobs j SET lease_expires_at = clock_timestamp() + make_interval(secs => p_lease_seconds)
     WHERE j.id = ANY(p_ids) AND j.status = 'PROCESSING' AND j.locked_by = p_worker
    RETURNING j.id;
END
$$;

-- Progress shown by the API; only on a job p_worker holds. Returns whether it did.
CREATE OR REPLACE FUNCTION glint_set_stage(p_id uuid, p_worker text, p_stage text)
RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    UPDATE analysis_jobs SET stage = left(p_stage, 64), updated_at = clock_timestamp()
     WHERE id = p_id AND status = 'PROCESSING' AND locked_by = p_worker;
    RETURN FOUND;
END
$$;

-- Hands jobs back at shutdown: PENDING again at once, the attempt not counted; the requeue trigger wakes a worker.
CREATE OR REPLACE FUNCTION glint_release_jobs(p_ids uuid[], p_worker text)
RETURNS SETOF uuid LANGUAGE plpgsql AS $$
BEGIN
    RETURN QUERY
    UPDATE analysis_jobs j SET status = 'PENDING', attempts = greatest(j.attempts - 1, 0), locked_by = NULL,
           lease_expires_at = NULL, run_after = clock_timestamp(), stage = 'released', updated_at = clock_timestamp()
     WHERE j.id = ANY(p_ids) AND j.status = 'PROCESSING' AND j.locked_by = p_worker
    RETURNING j.id;
END
$$;

-- ---- who may do what ----

-- The access model as data: one row per glint table and per function with rights beyond "none". A later migration that
-- adds a table or function inserts its row here and ends with SELECT glint_apply_access(); a function without a row is
-- SECURITY INVOKER and no role may execute it. Tables: privileges per role (glint_worker's are also its RLS policy).
-- Functions: definer = SECURITY DEFINER and executable by glint_worker (each acts on rows its caller may not touch,
-- guarded by status and locked_by); authenticated / service_role = 'EXECUTE' or ''.
CREATE TABLE IF NOT EXISTS glint_access (
    name text PRIMARY KEY,
    kind text NOT NULL CHECK (kind IN ('table', 'function')),
    authenticated text NOT NULL DEFAULT '',
    service_role text NOT NULL DEFAULT '',
    glint_worker text NOT NULL DEFAULT '',
    definer boolean NOT NULL DEFAULT false
);
INSERT INTO glint_access (name, kind, authenticated, service_role, glint_worker) VALUES
    ('analysis_jobs',      'table', 'SELECT', 'SELECT, INSERT, UPDATE, DELETE', 'SELECT'),
    ('analysis_results',   'table', 'SELECT', 'SELECT, DELETE',                 'SELECT'),
    ('user_credits',       'table', 'SELECT', 'SELECT, INSERT, UPDATE',         ''),
    ('credit_ledger',      'table', 'SELECT', 'SELECT, INSERT',                 ''),
    ('glint_remote_files', 'table', '',       'SELECT',                         'SELECT, INSERT, DELETE'),
    ('glint_migrations',   'table', '',       '',                               ''),
    ('glint_access',       'table', '',       '',                               '')
ON CONFLICT (name) DO NOTHING;
INSERT INTO glint_access (name, kind, definer, service_role, authenticated) VALUES
    ('glint_claim_jobs',        'function', true,  '',        ''),
    ('glint_heartbeat',         'function', true,  '',        ''),
    ('glint_set_stage',         'function', true,  '',        ''),
    ('glint_release_jobs',      'function', true,  '',        ''),
    ('glint_complete_jobs',     'function', true,  '',        ''),
    ('glint_fail_job',          'function', true,  '',        ''),
    ('glint_cancel_job',        'function', true,  'EXECUTE', ''),
    ('glint_reap_expired',      'function', true,  '',        ''),
    ('glint_reconcile_credits', 'function', true,  '',        ''),
    ('glint_enqueue_job',       'function', false, 'EXECUTE', ''),
    ('glint_credit_cost',       'function', false, 'EXECUTE', 'EXECUTE')
ON CONFLICT (name) DO NOTHING;

-- Applies glint_access to every glint object in this schema. Idempotent. Roles that do not exist (plain PostgreSQL has
-- no anon/authenticated/service_role; auth.uid() is Supabase's) are skipped.
CREATE OR REPLACE FUNCTION glint_apply_access() RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_schema text := current_schema();
    -- what a signed-in user sees: rows whose user_id is auth.uid(), results through their job
    v_own CONSTANT text := 'user_id = (SELECT auth.uid())';
    v_supabase boolean := to_regrole('authenticated') IS NOT NULL AND to_regprocedure('auth.uid()') IS NOT NULL;
    v_tables glint_access[];
    t glint_access;
    f record;
    r text;
BEGIN
    -- read first: the loop alters glint_access itself, which an open cursor over it would forbid
    SELECT array_agg(a ORDER BY a.name) INTO v_tables FROM glint_access a WHERE a.kind = 'table';
    FOREACH t IN ARRAY v_tables LOOP
        CONTINUE WHEN to_regclass(format('%I.%I', v_schema, t.name)) IS NULL;
        EXECUTE format('ALTER TABLE %I.%I ENABLE ROW LEVEL SECURITY', v_schema, t.name);
        EXECUTE format('REVOKE ALL ON %I.%I FROM PUBLIC, glint_worker', v_schema, t.name);
        FOREACH r IN ARRAY ARRAY['anon', 'authenticated', 'service_role'] LOOP
            CONTINUE WHEN to_regrole(r) IS NULL;
            EXECUTE format('REVOKE ALL ON %I.%I FROM %I', v_schema, t.name, r);
        END LOOP;
        IF t.authenticated <> '' AND v_supabase THEN
            EXECUTE format('GRANT %s ON %I.%I TO authenticated', t.authenticated, v_schema, t.name);
        END IF;
        IF t.service_role <> '' AND to_regrole('service_role') IS NOT NULL THEN
            EXECUTE format('GRANT %s ON %I.%I TO service_role', t.service_role, v_schema, t.name);
        END IF;
        IF t.glint_worker <> '' THEN
            EXECUTE format('GRANT %s ON %I.%I TO glint_worker', t.glint_worker, v_schema, t.name);
        END IF;
        -- policies: one per role and table (several permissive ones per role would all be evaluated)
        EXECUTE format('DROP POLICY IF EXISTS glint_worker_access ON %I.%I', v_schema, t.name);
        IF t.glint_worker <> '' THEN
            EXECUTE format('CREATE POLICY glint_worker_access ON %I.%I FOR %s TO glint_worker USING (true)%s', v_schema,
                           t.name, CASE WHEN t.glint_worker = 'SELECT' THEN 'SELECT' ELSE 'ALL' END,
                           CASE WHEN t.glint_worker = 'SELECT' THEN '' ELSE ' WITH CHECK (true)' END);
        END IF;
        EXECUTE format('DROP POLICY IF EXISTS glint_own_rows ON %I.%I', v_schema, t.name);
        IF t.authenticated <> '' AND v_supabase THEN
            EXECUTE format('CREATE POLICY glint_own_rows ON %I.%I FOR SELECT TO authenticated USING (%s)', v_schema, t.name,
                           CASE t.name WHEN 'analysis_results'
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
                AND EXISTS (SELECT 1 FROM pg_depend d JOIN pg_class tb ON tb.oid = d.refobjid
                             WHERE d.objid = c.oid AND d.deptype = 'a'
                               AND tb.relname IN (SELECT a.name FROM glint_access a WHERE a.kind = 'table'))
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
    FOR f IN SELECT p.oid::regprocedure AS sig, coalesce(a.definer, false) AS definer,
                    coalesce(a.service_role, '') <> '' AS service, coalesce(a.authenticated, '') <> '' AS signed_in
               FROM pg_proc p LEFT JOIN glint_access a ON a.name = p.proname AND a.kind = 'function'
              WHERE p.pronamespace = v_schema::regnamespace AND p.proname LIKE 'glint\_%'
    LOOP
        EXECUTE format('ALTER FUNCTION %s %s SET search_path = %I, pg_temp', f.sig,
                       CASE WHEN f.definer THEN 'SECURITY DEFINER' ELSE 'SECURITY INVOKER' END, v_schema);
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC, glint_worker', f.sig);
        FOREACH r IN ARRAY ARRAY['anon', 'authenticated', 'service_role'] LOOP
            CONTINUE WHEN to_regrole(r) IS NULL;
            EXECUTE format('REVOKE ALL ON FUNCTION %s FROM %I', f.sig, r);
        END LOOP;
        IF f.definer THEN
            EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO glint_worker', f.sig);
        END IF;
        IF f.service AND to_regrole('service_role') IS NOT NULL THEN
            EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO service_role', f.sig);
        END IF;
        IF f.signed_in AND v_supabase THEN
            EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO authenticated', f.sig);
        END IF;
    END LOOP;
END
$$;

SELECT glint_apply_access();
