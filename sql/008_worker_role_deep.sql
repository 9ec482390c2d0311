-- glint_worker's grants for deep mode's objects (sql/005), which came before the role (sql/007):
--   glint_remote_files       the worker records, names and forgets its own Files API uploads, and its recovery sweep
--                            reads leftovers: SELECT, INSERT, UPDATE (file_name), DELETE.
--   glint_reconcile_credits  moves credits for a deep job's real duration: SECURITY DEFINER like the other money
--                            functions, guarded by status + locked_by, EXECUTE for the worker only.
GRANT SELECT, INSERT, DELETE ON glint_remote_files TO glint_worker;
GRANT UPDATE (file_name) ON glint_remote_files TO glint_worker;

DO $$
DECLARE
    f record;
    r text;
BEGIN
    FOR f IN
        SELECT p.oid::regprocedure AS sig, n.nspname
          FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
         WHERE n.nspname = current_schema() AND p.proname = 'glint_reconcile_credits'
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
