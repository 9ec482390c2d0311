-- glint_worker's grants for deep mode's objects (sql/005), which came before the role (sql/007):
--   glint_remote_files       the worker records, names and forgets its own Files API uploads, and its recovery sweep
--                            reads leftovers: SELECT, INSERT, UPDATE (file_name), DELETE.
--   glint_reconcile_credits  moves credits for a deep job's real duration: SECURITY DEFINER like the other money
--                            functions, guarded by status + locked_by, EXECUTE for the worker only.
GRANT SELECT, INSERT, DELETE ON glint_remote_files TO glint_worker;
GRANT UPDATE (file_name) ON glint_remote_files TO glint_worker;

SELECT glint_worker_function('glint_reconcile_credits');
