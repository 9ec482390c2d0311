-- Least privilege: the role the worker daemon connects as. `glint-worker migrate` runs as the schema owner; the daemon
-- (serve) should connect as glint_worker. Created NOLOGIN: an operator enables it once per cluster with
--   ALTER ROLE glint_worker LOGIN PASSWORD '...';
-- and puts that user and password into the worker's DATABASE_URL (README: "Database role").
--
-- What the worker may do:
--   analysis_jobs    SELECT; UPDATE of the claim/lease/stage columns only (claim, heartbeat, stage, release). It cannot
--                    change who a job belongs to, its URL, mode, cost, max_attempts or error fields, nor INSERT/DELETE.
--   analysis_results SELECT (the API shows results). Results are written by glint_complete_jobs.
--   functions        EXECUTE on glint_complete_jobs, glint_fail_job, glint_cancel_job, glint_reap_expired. These are
--                    SECURITY DEFINER (they run as the owner, with a pinned search_path): they are the only way the worker
--                    touches credits, the ledger and results, and each one is guarded by the job's status and locked_by.
--   nothing else     no access to user_credits or credit_ledger (money moves only through those functions), none to
--                    glint_migrations, no glint_enqueue_job (charging users is the backend's job), no other schema.
-- LISTEN/NOTIFY need no privilege.
--
-- Later migrations: grants are not inherited by new objects (no default privileges here, on purpose: a new table must
-- be a decision). A migration that adds a table or function the worker uses must GRANT it to glint_worker here-style;
-- one that CREATE OR REPLACEs a function below must restate SECURITY DEFINER SET search_path (a replace resets both).
-- tests/integration/test_role.py fails on any table in the schema without a decision recorded in it.

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'glint_worker') THEN
        CREATE ROLE glint_worker NOLOGIN;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL; -- another database of the same cluster created it concurrently (roles are cluster-wide)
END
$$;

DO $$
DECLARE
    v_schema text := current_schema();
BEGIN
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO glint_worker', v_schema);
END
$$;

GRANT SELECT ON analysis_jobs TO glint_worker;
GRANT UPDATE (status, locked_by, attempts, started_at, lease_expires_at, run_after, stage, updated_at)
    ON analysis_jobs TO glint_worker;
GRANT SELECT ON analysis_results TO glint_worker;

-- The worker's functions run as their owner with a search_path pinned to their own schema (pg_temp last, so a
-- temporary table can never shadow one of ours). PUBLIC (and Supabase's API roles, which get EXECUTE on new
-- functions by default) lose EXECUTE: as definer functions they would otherwise let anyone complete or fail jobs.
-- Later migrations call this for functions they add (sql/008).
CREATE OR REPLACE FUNCTION glint_worker_function(p_name text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    f record;
    r text;
BEGIN
    FOR f IN
        SELECT p.oid::regprocedure AS sig, n.nspname
          FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
         WHERE n.nspname = current_schema() AND p.proname = p_name
    LOOP
        EXECUTE format('ALTER FUNCTION %s SECURITY DEFINER SET search_path = %I, pg_temp', f.sig, f.nspname);
        EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC', f.sig);
        FOREACH r IN ARRAY ARRAY['anon', 'authenticated'] LOOP
            IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
                EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM %I', f.sig, r);
            END IF;
        END LOOP;
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO glint_worker', f.sig);
    END LOOP;
END
$$;
REVOKE EXECUTE ON FUNCTION glint_worker_function(text) FROM PUBLIC;

SELECT glint_worker_function(name)
  FROM unnest(ARRAY['glint_complete_jobs', 'glint_fail_job', 'glint_cancel_job', 'glint_reap_expired']) AS name;
