"""The least-privilege role of sql/007 and sql/009: workers connect as glint_worker and can do their job, and nothing
more. Since sql/009 it changes analysis_jobs only through SECURITY DEFINER functions guarded by locked_by."""
import uuid

import psycopg2

from harness import WORKER_PASSWORD, WORKER_ROLE, Database, Worker, check, migrate, report, wait_for

# What glint_worker may do with each table in the schema. A table missing here fails the test: whoever adds a table
# decides (and grants in a migration) what the worker may do with it.
POLICY = {
    "analysis_jobs": {"SELECT"},
    "analysis_results": {"SELECT"},
    "user_credits": set(),
    "credit_ledger": set(),
    "glint_migrations": set(),
    "glint_remote_files": {"SELECT", "INSERT", "UPDATE", "DELETE"},
    "glint_gemini_budget": set(),
    "glint_access": set(),  # sql/015: only through glint_gemini_admit/settle/pause
}
WORKER_FUNCTIONS = {"glint_complete_jobs", "glint_fail_job", "glint_cancel_job", "glint_reap_expired",
                    "glint_reconcile_credits", "glint_claim_jobs", "glint_heartbeat", "glint_set_stage",
                    "glint_release_jobs", "glint_gemini_admit", "glint_gemini_settle",
                    "glint_gemini_pause", "glint_defer_job"}

db = Database("role")
w = None
role = None


def refused(sql, *args):
    """True when the statement fails with insufficient_privilege (42501) as glint_worker."""
    try:
        role.cursor().execute(sql, args)
        return False
    except psycopg2.Error as e:
        return e.pgcode == "42501"


try:
    migrate(db)
    role = psycopg2.connect(host=db.host, port=db.port, user=WORKER_ROLE, password=WORKER_PASSWORD, dbname=db.name)
    role.autocommit = True

    # the daemon runs as the role and still does its job: claim, complete, fail + refund, cancel via the API
    w = Worker(db)
    check(w.wait_ready(), "worker ready as %s" % WORKER_ROLE)
    users = db.q("SELECT DISTINCT usename FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()"
                 " AND usename <> 'postgres'", db.name)
    check(users == [(WORKER_ROLE,)], "worker sessions use %s: %r" % (WORKER_ROLE, users))
    user = str(uuid.uuid4())
    db.q("INSERT INTO user_credits (user_id, balance) VALUES (%s, 5)", user)
    ok = db.one("SELECT glint_enqueue_job(%s, 'test://noop')", user)
    bad = db.one("SELECT glint_enqueue_job(%s, 'test://fail/permanent')", user)
    check(wait_for(lambda: db.one("SELECT status FROM analysis_jobs WHERE id = %s", ok) == "COMPLETED"), "completed")
    check(wait_for(lambda: db.one("SELECT status FROM analysis_jobs WHERE id = %s", bad) == "FAILED"), "failed")
    check(db.one("SELECT balance FROM user_credits WHERE user_id = %s", user) == 4, "refund went through the function")
    later = db.one("SELECT glint_enqueue_job(%s, 'test://sleep/60000')", user)
    wait_for(lambda: db.one("SELECT status FROM analysis_jobs WHERE id = %s", later) == "PROCESSING")
    st, body = w.json("POST", "/worker/jobs/%s/cancel" % later, body=b"")
    check(st == 200 and body.get("status") == "CANCELLED", "cancel through the API: %s %s" % (st, body))
    check(db.one("SELECT balance FROM user_credits WHERE user_id = %s", user) == 4, "cancel refunded")

    # every table has a decision, and the grants match it exactly
    tables = [r[0] for r in db.q("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")]
    for t in tables:
        check(t in POLICY, "table %s has no glint_worker policy in tests/integration/test_role.py (and sql/007)" % t)
        have = {p for p in ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")
                if db.one("SELECT has_table_privilege(%s, %s, %s)", WORKER_ROLE, t, p)
                or (p == "UPDATE" and db.one("SELECT has_any_column_privilege(%s, %s, 'UPDATE')", WORKER_ROLE, t))}
        check(have == POLICY.get(t, set()), "%s: glint_worker has %s, policy %s" % (t, sorted(have), sorted(POLICY.get(t, []))))

    # plain PostgreSQL too (sql/009): RLS on every table, a pinned search_path on every glint function
    check(db.q("SELECT relname FROM pg_class WHERE relnamespace = current_schema()::regnamespace AND relkind = 'r'"
               " AND NOT relrowsecurity") == [], "row-level security on every table")
    check(db.q("SELECT proname FROM pg_proc WHERE pronamespace = current_schema()::regnamespace AND proname LIKE 'glint%%'"
               " AND NOT coalesce(proconfig::text LIKE '%%search_path=%%', false)") == [], "search_path pinned everywhere")
    check(not db.one("SELECT bool_or(has_function_privilege('public', oid, 'EXECUTE')) FROM pg_proc"
                     " WHERE pronamespace = current_schema()::regnamespace AND proname LIKE 'glint%%'"),
          "no glint function executable by PUBLIC")

    # functions: the worker's are SECURITY DEFINER with a pinned search_path and not executable by PUBLIC
    for name, definer, config, public in db.q(
            "SELECT p.proname, p.prosecdef, p.proconfig, has_function_privilege('public', p.oid, 'EXECUTE')"
            " FROM pg_proc p WHERE p.pronamespace = current_schema()::regnamespace AND p.proname = ANY(%s)",
            list(WORKER_FUNCTIONS)):
        check(definer and config and any(c.startswith("search_path=") for c in config) and not public,
              "%s: definer %s, config %s, PUBLIC execute %s" % (name, definer, config, public))

    # what it must not do
    j = db.one("INSERT INTO analysis_jobs (user_id, video_url, run_after) VALUES (gen_random_uuid(), 'test://noop',"
               " now() + interval '1 day') RETURNING id")
    check(refused("UPDATE user_credits SET balance = balance + 1000"), "UPDATE user_credits refused")
    check(refused("SELECT * FROM user_credits"), "SELECT user_credits refused")
    check(refused("INSERT INTO credit_ledger (user_id, delta, reason) VALUES (gen_random_uuid(), 100, 'adjust')"),
          "INSERT credit_ledger refused")
    check(refused("SELECT glint_refund(%s)", j), "glint_refund as the worker refused (it would write the ledger)")
    check(refused("SELECT glint_enqueue_job(%s, 'x')", user), "glint_enqueue_job refused (charging is the backend's)")
    check(refused("UPDATE analysis_jobs SET credits_charged = 0 WHERE id = %s", j), "UPDATE credits_charged refused")
    check(refused("UPDATE analysis_jobs SET status = 'COMPLETED' WHERE id = %s", j), "UPDATE status refused (sql/009)")
    check(refused("UPDATE analysis_jobs SET lease_expires_at = 'infinity' WHERE id = %s", j), "UPDATE lease refused")
    check(refused("UPDATE analysis_jobs SET user_id = gen_random_uuid() WHERE id = %s", j), "UPDATE user_id refused")
    check(refused("UPDATE analysis_jobs SET video_url = 'file:///etc/passwd' WHERE id = %s", j), "UPDATE video_url refused")
    check(refused("INSERT INTO analysis_jobs (user_id, video_url) VALUES (gen_random_uuid(), 'x')"), "INSERT job refused")
    check(refused("DELETE FROM analysis_jobs WHERE id = %s", j), "DELETE job refused")
    check(refused("INSERT INTO analysis_results (job_id, result) VALUES (%s, '{}')", j), "INSERT result refused")
    check(refused("DROP TABLE analysis_results"), "DROP TABLE refused")
    check(refused("TRUNCATE analysis_jobs"), "TRUNCATE refused")
    check(refused("ALTER TABLE analysis_jobs DROP CONSTRAINT analysis_jobs_mode_check"), "ALTER TABLE refused")
    check(refused("CREATE TABLE public.evil (x int)"), "CREATE in the schema refused")
    check(refused("SELECT * FROM glint_migrations"), "glint_migrations refused")
    check(refused("CREATE OR REPLACE FUNCTION glint_fail_job(uuid, text, text, text, bigint) RETURNS text"
                  " LANGUAGE sql AS 'SELECT NULL::text'"), "replacing a definer function refused")
    db.q("CREATE SCHEMA private")
    db.q("CREATE TABLE private.secrets (v text)")
    check(refused("SELECT * FROM private.secrets"), "other schemas unreadable")
    check(refused("SET ROLE postgres"), "cannot become the owner")
    check(db.one("SELECT rolsuper OR rolcreaterole OR rolcreatedb OR rolbypassrls FROM pg_roles WHERE rolname = %s",
                 WORKER_ROLE) is False, "no superuser/createrole/createdb/bypassrls")
    # the definer functions keep their guards: the role cannot complete a job it does not hold
    check(role.cursor().execute("SELECT count(*) FROM glint_complete_jobs('someone-else', %s::jsonb)",
                                ('[{"id":"%s","result":{}}]' % j,)) is None
          and db.one("SELECT status FROM analysis_jobs WHERE id = %s", j) == "PENDING", "complete of an unheld job: no-op")
    # ... nor renew, stage or release one: each transition checks locked_by
    cur = role.cursor()
    cur.execute("SELECT count(*) FROM glint_heartbeat(ARRAY[%s]::uuid[], 'someone-else', 3600)", (j,))
    hb = cur.fetchone()[0]
    cur.execute("SELECT glint_set_stage(%s, 'someone-else', 'evil')", (j,))
    st = cur.fetchone()[0]
    cur.execute("SELECT count(*) FROM glint_release_jobs(ARRAY[%s]::uuid[], 'someone-else')", (j,))
    rel = cur.fetchone()[0]
    check((hb, st, rel) == (0, False, 0) and db.q("SELECT status, stage, lease_expires_at FROM analysis_jobs WHERE id = %s", j)
          == [("PENDING", None, None)], "heartbeat/stage/release of an unheld job: no-op (%r %r %r)" % (hb, st, rel))
    try:
        cur.execute("SELECT * FROM glint_claim_jobs('w', 864000, 1)")
        code = None
    except psycopg2.Error as e:
        code = e.pgcode
    check(code == "22023", "a ten-day lease is refused by the claim: %s" % code)
    check(w.stop() == 0, "clean exit")
    w = None
finally:
    if w:
        w.stop()
    if role:
        role.close()
    db.close()
report()
