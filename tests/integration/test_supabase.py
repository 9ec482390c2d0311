"""Safe on a Supabase project (issue 11, docs/supabase.md). Its own throwaway cluster prepared like a Supabase project
before `migrate`: a superuser supabase_admin, a `postgres` that is NOT a superuser and owns the database, the API roles
anon / authenticated / service_role (BYPASSRLS) / authenticator, default privileges granting ALL on new tables,
functions and sequences in public to the API roles, and an auth schema whose uid() reads the JWT claims as Supabase's
does. Requests are made the way PostgREST makes them: log in as authenticator, SET LOCAL ROLE to the JWT's role, claims
in request.jwt.claims / request.jwt.claim.sub.
Checks: every role x every glint table (SELECT/INSERT/UPDATE/DELETE) and function (EXECUTE) against the declared matrix
(tests/supabase/access.py, which also writes the docs' matrix); a user sees their rows and none of another's; refused
attempts change no balance; Supabase's lints (vendored from supabase/splinter) report no ERROR/WARN on glint objects;
standard and deep jobs complete with the worker connected as glint_worker and RLS on; a database migrated by 001-008
upgrades in place; a backend's own analysis_jobs is adopted, or refused with one message and nothing changed."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid

import psycopg2

from harness import BIN, SRC, Worker, check, free_port, report, wait_for
from standins import GEMINI_KEY, fake_gemini

sys.path.insert(0, os.path.join(SRC, "supabase"))
import access  # noqa: E402

LINTS = os.path.join(SRC, "supabase", "splinter")
SQL = os.path.join(SRC, "..", "sql")
WORKER_PASSWORD = "test-worker-password"


class Cluster:
    """A PostgreSQL cluster of its own: the API roles are cluster-wide and must not leak into the shared fixture."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="glint-supa-")
        bindir = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True).stdout.strip()
        self.port = free_port()
        root = os.getuid() == 0
        if root:
            shutil.chown(self.dir, "postgres")
        self.as_pg = (["runuser", "-u", "postgres", "--"] if root else [])
        self.pg_ctl = os.path.join(bindir, "pg_ctl")
        subprocess.run(self.as_pg + [os.path.join(bindir, "initdb"), "-D", self.dir + "/data", "-U", "supabase_admin", "-A",
                                     "trust", "-E", "UTF8", "--no-sync"], check=True, capture_output=True)
        subprocess.run(self.as_pg + [self.pg_ctl, "-D", self.dir + "/data", "-l", self.dir + "/server.log", "-w", "-t", "60",
                                     "-o", "-k %s -p %d -c listen_addresses='' -c fsync=off -c max_connections=100"
                                     % (self.dir, self.port), "start"], check=True, capture_output=True)
        self.host = self.dir

    def connect(self, user, dbname="postgres", password=None):
        c = psycopg2.connect(host=self.host, port=self.port, user=user, dbname=dbname, password=password)
        c.autocommit = True
        return c

    def stop(self):
        subprocess.run(self.as_pg + [self.pg_ctl, "-D", self.dir + "/data", "-m", "immediate", "-w", "stop"],
                       capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)


SUPABASE_ROLES = """
CREATE ROLE postgres LOGIN CREATEROLE CREATEDB REPLICATION BYPASSRLS;  -- as on hosted Supabase: not a superuser
CREATE ROLE anon NOLOGIN NOINHERIT;
CREATE ROLE authenticated NOLOGIN NOINHERIT;
CREATE ROLE service_role NOLOGIN NOINHERIT BYPASSRLS;
CREATE ROLE authenticator LOGIN NOINHERIT;
GRANT anon, authenticated, service_role TO authenticator;
"""
# per database, as supabase_admin, before migrate
SUPABASE_DB = """
GRANT USAGE ON SCHEMA public TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES FOR ROLE postgres IN SCHEMA public GRANT ALL ON TABLES TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES FOR ROLE postgres IN SCHEMA public GRANT ALL ON FUNCTIONS TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES FOR ROLE postgres IN SCHEMA public GRANT ALL ON SEQUENCES TO anon, authenticated, service_role;
CREATE SCHEMA auth AUTHORIZATION supabase_admin;
CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE AS $$
    SELECT coalesce(nullif(current_setting('request.jwt.claim.sub', true), ''),
                    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub'))::uuid
$$;
GRANT USAGE ON SCHEMA auth TO postgres, anon, authenticated, service_role;
"""


class SupaDB:
    """A database of the cluster, owned by postgres (as a project's is), set up like a Supabase project."""

    def __init__(self, cluster, name):
        self.cluster, self.name, self.host, self.port = cluster, name, cluster.host, cluster.port
        admin = cluster.connect("supabase_admin")
        admin.cursor().execute('CREATE DATABASE "%s" OWNER postgres' % name)
        admin.close()
        a = cluster.connect("supabase_admin", name)
        a.cursor().execute(SUPABASE_DB)
        a.close()
        self.url = "postgresql:///%s?host=%s&port=%s&user=postgres" % (name, self.host, self.port)
        self.worker_url = "postgresql:///%s?host=%s&port=%s&user=glint_worker&password=%s" % (
            name, self.host, self.port, WORKER_PASSWORD)
        self.conn = cluster.connect("postgres", name)

    def q(self, sql, *args):
        cur = self.conn.cursor()
        cur.execute(sql, args)
        return cur.fetchall() if cur.description else None

    def one(self, sql, *args):
        rows = self.q(sql, *args)
        return rows[0][0] if rows else None

    def migrate(self):
        env = dict(os.environ, DATABASE_URL=self.url)
        return subprocess.run([os.path.join(BIN, "glint-worker"), "migrate"], env=env, capture_output=True, text=True,
                              cwd="/tmp")


class Api:
    """One PostgREST-style request per call: authenticator, SET LOCAL ROLE, the JWT claims."""

    def __init__(self, db, role, sub=None):
        self.role, self.sub = role, sub
        self.conn = db.cluster.connect("authenticator", db.name)
        self.conn.autocommit = False
        self.claims = json.dumps({"role": role, **({"sub": sub} if sub else {})})

    def run(self, sql, args=(), commit=False):
        """(ok, rows or sqlstate)"""
        cur = self.conn.cursor()
        try:
            cur.execute("SELECT set_config('role', %s, true), set_config('request.jwt.claims', %s, true),"
                        " set_config('request.jwt.claim.sub', %s, true)", (self.role, self.claims, self.sub or ""))
            cur.execute(sql, args)
            rows = cur.fetchall() if cur.description else cur.rowcount
            (self.conn.commit if commit else self.conn.rollback)()
            return True, rows
        except psycopg2.Error as e:
            self.conn.rollback()
            return False, e.pgcode


class WorkerConn:
    """glint_worker logs in itself (no SET ROLE), as the daemon does."""

    def __init__(self, db):
        self.conn = psycopg2.connect(host=db.host, port=db.port, dbname=db.name, user="glint_worker",
                                     password=WORKER_PASSWORD)

    def run(self, sql, args=(), commit=False):
        cur = self.conn.cursor()
        try:
            cur.execute(sql, args)
            rows = cur.fetchall() if cur.description else cur.rowcount
            (self.conn.commit if commit else self.conn.rollback)()
            return True, rows
        except psycopg2.Error as e:
            self.conn.rollback()
            return False, e.pgcode


def attempts(table, uid, job):
    """One statement per operation that succeeds when (and only when) the privilege is there."""
    ins = {
        "analysis_jobs": ("INSERT INTO analysis_jobs (user_id, video_url) VALUES (%s, 'https://youtu.be/ok000000000')", (uid,)),
        "analysis_results": ("INSERT INTO analysis_results (job_id, result) VALUES (%s, '{}')", (job,)),
        "user_credits": ("INSERT INTO user_credits (user_id, balance) VALUES (gen_random_uuid(), 1000000)", ()),
        "credit_ledger": ("INSERT INTO credit_ledger (user_id, delta, reason) VALUES (%s, 1000, 'adjust')", (uid,)),
        "glint_remote_files": ("INSERT INTO glint_remote_files (job_id, display_name) VALUES (%s, 'probe')", (job,)),
        "glint_migrations": ("INSERT INTO glint_migrations (name) VALUES ('999_probe.sql')", ()),
        "glint_gemini_budget": ("INSERT INTO glint_gemini_budget (model) VALUES ('probe-model')", ()),
        "glint_access": ("INSERT INTO glint_access (name, kind) VALUES ('probe', 'table')", ()),
    }[table]
    col = {"analysis_jobs": "status = 'COMPLETED'", "analysis_results": "model = 'x'", "user_credits": "balance = 1000000",
           "credit_ledger": "delta = 1000", "glint_remote_files": "file_name = 'x'",
           "glint_migrations": "applied_at = now()", "glint_gemini_budget": "requests = 0",
           "glint_access": "definer = false"}[table]
    return {"SELECT": ("SELECT count(*) FROM %s" % table, ()), "INSERT": ins, "UPDATE": ("UPDATE %s SET %s" % (table, col), ()),
            "DELETE": ("DELETE FROM %s" % table, ())}


def check_matrix(db, label, user_a, job_a):
    """Every role x table x op and role x function against access.py; the writes are committed when refused (they
    must not change anything) and rolled back when allowed."""
    balances = db.q("SELECT user_id, balance FROM user_credits ORDER BY 1")
    ledger = db.one("SELECT count(*) FROM credit_ledger")
    conns = {"anon": Api(db, "anon"), "authenticated": Api(db, "authenticated", user_a),
             "service_role": Api(db, "service_role"), "glint_worker": WorkerConn(db)}
    tables = {r[0] for r in db.q("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    check(tables == set(access.TABLES), "%s: every table has a declared row: %s" % (label, sorted(tables ^ set(access.TABLES))))
    for table in sorted(tables):
        for op, (sql, args) in attempts(table, user_a, job_a).items():
            for role, conn in conns.items():
                want = op in access.TABLES.get(table, {}).get(role, {})
                ok, got = conn.run(sql, args, commit=not want)
                check(ok == want and (ok or got == "42501"),
                      "%s: %s %s on %s: %s, declared %s" % (label, role, op, table, got, "allowed" if want else "refused"))
    fns = db.q("SELECT p.proname, p.oid::regprocedure::text, p.prosecdef, p.pronargs, p.proconfig FROM pg_proc p"
               " WHERE p.pronamespace = 'public'::regnamespace AND p.proname LIKE 'glint%%'")
    check({f[0] for f in fns} == set(access.FUNCTIONS), "%s: every function declared: %s"
          % (label, sorted({f[0] for f in fns} ^ set(access.FUNCTIONS))))
    for name, sig, definer, nargs, config in fns:
        decl = access.FUNCTIONS.get(name, {"roles": set(), "definer": None})
        check(definer == decl["definer"] and any(c.startswith("search_path=") for c in config or []),
              "%s: %s definer=%s config=%s" % (label, sig, definer, config))
        call = "SELECT %s(%s)" % (name, ", ".join(["NULL"] * nargs))
        for role, conn in conns.items():
            want = role in decl["roles"]
            ok, got = conn.run(call, commit=False)
            # allowed: the call ran (it may refuse NULL arguments, never with a privilege error)
            check((got != "42501") == want, "%s: %s EXECUTE %s: %s, declared %s" % (label, role, sig, got, want))
    check(db.q("SELECT user_id, balance FROM user_credits ORDER BY 1") == balances, "%s: no balance changed" % label)
    check(db.one("SELECT count(*) FROM credit_ledger") == ledger, "%s: no ledger row added" % label)
    for c in conns.values():
        c.conn.close()


def check_own_rows(db, label, user_a, user_b):
    for me, other in ((user_a, user_b), (user_b, user_a)):
        api = Api(db, "authenticated", me)
        for table, key in (("analysis_jobs", "user_id"), ("user_credits", "user_id"), ("credit_ledger", "user_id"),
                           ("analysis_results", "(SELECT user_id FROM analysis_jobs j WHERE j.id = job_id)")):
            ok, rows = api.run("SELECT DISTINCT %s::text FROM %s" % (key, table))
            mine = db.one("SELECT count(*) FROM %s WHERE %s = %%s" % (table, key), me)
            check(ok and rows == ([(me,)] if mine else []), "%s: %s sees only own %s: %r" % (label, me[:8], table, rows))
            ok, rows = api.run("SELECT count(*) FROM %s WHERE %s = %%s" % (table, key), (other,))
            check(ok and rows == [(0,)], "%s: none of another's %s" % (label, table))
        # a signed-in user cannot spend or mint credits, nor enqueue (docs: the backend enqueues)
        before = db.one("SELECT balance FROM user_credits WHERE user_id = %s", me)
        for sql, args in (("SELECT glint_enqueue_job(%s, 'https://youtu.be/ok000000000')", (me,)),
                          ("SELECT glint_refund(id) FROM analysis_jobs", ()),
                          ("UPDATE user_credits SET balance = 1000000", ()),
                          ("INSERT INTO credit_ledger (user_id, delta, reason) VALUES (%s, 1000, 'adjust')", (me,))):
            ok, got = api.run(sql, args, commit=True)
            check(not ok and got == "42501", "%s: refused: %s (%s)" % (label, sql, got))
        check(db.one("SELECT balance FROM user_credits WHERE user_id = %s", me) == before, "%s: balance kept" % label)
        api.conn.close()
    anon = Api(db, "anon")
    ok, got = anon.run("UPDATE user_credits SET balance = 1000000", commit=True)
    check(not ok and got == "42501" and db.one("SELECT max(balance) FROM user_credits") < 1000000, "%s: anon cannot mint" % label)
    anon.conn.close()


def check_lints(db, label):
    """Supabase's lints (vendored from supabase/splinter): no ERROR or WARN on any glint object. Proven live first: a
    table without RLS and a function without search_path must be reported."""
    c = db.cluster.connect("postgres", db.name)
    c.autocommit = False
    cur = c.cursor()
    cur.execute("CREATE SCHEMA lint")
    cur.execute("SET LOCAL pgrst.db_schemas = 'public, graphql_public'")
    names = sorted(f[:-4] for f in os.listdir(LINTS) if f.endswith(".sql"))
    for n in names:
        cur.execute(open(os.path.join(LINTS, n + ".sql")).read())
    union = " UNION ALL ".join('SELECT name, level, detail, metadata->>\'name\' FROM lint."%s"' % n for n in names)
    cur.execute("CREATE TABLE public.probe_table (x int)")
    cur.execute("CREATE FUNCTION public.probe_fn() RETURNS int LANGUAGE sql AS 'SELECT 1'")
    cur.execute("SELECT name, metadata_name FROM (%s) x(name, level, detail, metadata_name)"
                " WHERE metadata_name LIKE 'probe%%'" % union)
    probes = set(cur.fetchall())
    check({("rls_disabled_in_public", "probe_table"), ("function_search_path_mutable", "probe_fn")} <= probes,
          "%s: the lints see a problem when there is one: %s" % (label, probes))
    cur.execute("DROP TABLE public.probe_table")
    cur.execute("DROP FUNCTION public.probe_fn()")
    cur.execute("SELECT name, level, detail FROM (%s) x(name, level, detail, metadata_name) WHERE level IN ('ERROR', 'WARN')"
                " AND (metadata_name LIKE 'glint%%' OR metadata_name IN ('analysis_jobs', 'analysis_results',"
                " 'user_credits', 'credit_ledger') OR detail LIKE '%%glint%%' OR detail LIKE '%%analysis_%%'"
                " OR detail LIKE '%%credit%%')" % union)
    found = cur.fetchall()
    check(found == [], "%s: lints ERROR/WARN on glint objects: %s" % (label, found))
    cur.execute("SELECT count(*) FROM (%s) x WHERE level = 'INFO'" % union)
    print("%s: %d lints run, %d INFO findings" % (label, len(names), cur.fetchone()[0]), flush=True)
    c.rollback()
    c.close()


def seed_users(db):
    """Two users with a balance and jobs, through the backend's path (service_role)."""
    svc = Api(db, "service_role")
    users, jobs = [], []
    for _ in range(2):
        u = str(uuid.uuid4())
        ok, _ = svc.run("INSERT INTO user_credits (user_id, balance) VALUES (%s, 50)", (u,), commit=True)
        check(ok, "service_role tops up a balance")
        ok, rows = svc.run("SELECT glint_enqueue_job(%s, 'https://youtu.be/ok000000000', 'standard')", (u,), commit=True)
        check(ok, "service_role enqueues: %s" % (rows,))
        # a far-future job: no worker touches it while the matrix runs
        ok, rows = svc.run("INSERT INTO analysis_jobs (user_id, video_url, run_after) VALUES (%s, 'https://youtu.be/ok000000000',"
                           " now() + interval '1 day') RETURNING id", (u,), commit=True)
        users.append(u)
        jobs.append(rows[0][0] if ok else None)
    svc.conn.close()
    return users, jobs


def worker_login(cluster):
    """What an operator does once: glint_worker may log in (as postgres, which has CREATEROLE, not superuser)."""
    c = cluster.connect("postgres")
    c.cursor().execute("ALTER ROLE glint_worker LOGIN PASSWORD %s", (WORKER_PASSWORD,))
    c.close()


def run_jobs(db, tmp):
    """A standard and a deep job through the production binary and the stand-ins, worker as glint_worker, RLS on."""
    media = os.path.join(tmp, "v.mp4")
    subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc=s=160x120:r=5", "-f", "lavfi", "-i", "sine=frequency=300", "-t", "4", "-c:v", "libx264",
                    "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", media], check=True)
    work = os.path.join(tmp, "work")
    os.mkdir(work)
    gem = fake_gemini("--processing-polls", "1")
    w = Worker(db, binary="glint-worker", YTDLP_PATH=os.path.join(SRC, "standins", "fake-yt-dlp"), GEMINI_BASE_URL=gem.base,
               GEMINI_API_KEY=GEMINI_KEY, WORK_DIR=work, FAKE_YTDLP_MEDIA=media, FAKE_YTDLP_CACHE=tmp,
               FAKE_YTDLP_LOG=os.path.join(tmp, "yt.log"), YTDLP_TIMEOUT_MS=30000, GEMINI_TIMEOUT_MS=20000,
               LEASE_SECONDS=10, POLL_INTERVAL_MS=500)
    try:
        check(w.wait_ready(), "worker ready")
        who = db.q("SELECT DISTINCT usename FROM pg_stat_activity WHERE datname = %s AND usename <> 'postgres'", db.name)
        check(who == [("glint_worker",)], "the worker connects as glint_worker: %r" % who)
        svc = Api(db, "service_role")
        user = str(uuid.uuid4())
        svc.run("INSERT INTO user_credits (user_id, balance) VALUES (%s, 100)", (user,), commit=True)
        ids = {}
        for mode in ("standard", "deep"):
            ok, rows = svc.run("SELECT glint_enqueue_job(%s, 'https://youtu.be/ok000000000', %s)", (user, mode), commit=True)
            ids[mode] = rows[0][0] if ok else None
        for mode, jid in ids.items():
            wait_for(lambda: db.one("SELECT status FROM analysis_jobs WHERE id = %s", jid) in ("COMPLETED", "FAILED"), 60)
            row = db.q("SELECT status, error_code, stage FROM analysis_jobs WHERE id = %s", jid)
            check(row == [("COMPLETED", None, "done")], "%s job completes as glint_worker with RLS on: %r" % (mode, row))
        res = db.one("SELECT result FROM analysis_results WHERE job_id = %s", ids["deep"])
        check(res is not None and len(res.get("visualAudit", [])) > 0, "deep result with visualAudit")
        check(db.one("SELECT balance FROM user_credits WHERE user_id = %s", user) == 100 - 1 - 15, "charged 1 + 15")
        # the user reads their finished job and result through the API roles
        me = Api(db, "authenticated", user)
        ok, rows = me.run("SELECT j.status, r.result IS NOT NULL FROM analysis_jobs j JOIN analysis_results r ON r.job_id = j.id")
        check(ok and sorted(rows) == [("COMPLETED", True)] * 2, "the user sees both results: %r" % (rows,))
        me.conn.close()
        # cancel through the backend's key: refund once
        ok, rows = svc.run("INSERT INTO analysis_jobs (user_id, video_url, run_after) VALUES (%s, 'x', now() + interval '1 day')"
                           " RETURNING id", (user,), commit=True)
        ok, rows = svc.run("SELECT status, changed FROM glint_cancel_job(%s)", (rows[0][0],), commit=True)
        check(ok and rows == [("CANCELLED", True)], "service_role cancels: %r" % (rows,))
        svc.conn.close()
        check(w.stop() == 0, "worker exits cleanly")
    finally:
        w.stop()
        gem.stop()


def apply_old(db):
    """A database as 001-008 left it (the migrate of that time: one transaction per file, recorded)."""
    cur = db.conn.cursor()
    cur.execute("CREATE TABLE glint_migrations (name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())")
    for name in sorted(os.listdir(SQL)):
        if "001" <= name[:3] <= "008":
            cur.execute(open(os.path.join(SQL, name)).read())
            cur.execute("INSERT INTO glint_migrations (name) VALUES (%s)", (name,))


def columns(db, table="analysis_jobs"):
    return db.q("SELECT column_name, data_type, column_default, is_nullable FROM information_schema.columns"
                " WHERE table_schema = 'public' AND table_name = %s ORDER BY column_name", table)


def check_adoption(cluster):
    # a backend's own table, compatible: brought to the contract, its rows and extra columns kept
    ref = SupaDB(cluster, "glint_ref")
    ref.migrate()
    db = SupaDB(cluster, "glint_adopt")
    db.q("CREATE TABLE analysis_jobs (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), user_id uuid NOT NULL,"
         " video_url text NOT NULL, status text NOT NULL DEFAULT 'PENDING', created_at timestamptz DEFAULT now(),"
         " title text)")
    old = db.one("INSERT INTO analysis_jobs (user_id, video_url, title) VALUES (gen_random_uuid(), 'https://youtu.be/ok000000000',"
                 " 'kept') RETURNING id")
    r = db.migrate()
    check(r.returncode == 0, "compatible analysis_jobs adopted: %s" % r.stderr.strip())
    want = [c for c in columns(ref)]
    have = [c for c in columns(db) if c[0] != "title"]
    check(have == want, "adopted table matches the contract: %s" % sorted(set(have) ^ set(want)))
    check(db.q("SELECT status, mode, attempts, max_attempts, title FROM analysis_jobs WHERE id = %s", old)
          == [("PENDING", "standard", 0, 3, "kept")], "old row kept, new columns defaulted")
    cons = lambda d: d.q("SELECT conname FROM pg_constraint WHERE conrelid = 'analysis_jobs'::regclass ORDER BY 1")  # noqa
    check(cons(db) == cons(ref), "same constraints: %s vs %s" % (cons(db), cons(ref)))
    check(db.one("SELECT relrowsecurity FROM pg_class WHERE oid = 'analysis_jobs'::regclass"), "RLS on the adopted table")
    # conflicting: stops before changing anything, one message naming the table and the columns
    bad = SupaDB(cluster, "glint_conflict")
    bad.q("CREATE TABLE analysis_jobs (id uuid PRIMARY KEY, user_id uuid NOT NULL, video_url text NOT NULL,"
          " status int NOT NULL DEFAULT 0, created_at text, owner_email text NOT NULL)")
    bad.q("INSERT INTO analysis_jobs VALUES (gen_random_uuid(), gen_random_uuid(), 'x', 0, 'yesterday', 'a@b')")
    before = (columns(bad), bad.q("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"),
              bad.q("SELECT proname FROM pg_proc WHERE pronamespace = 'public'::regnamespace"))
    r = bad.migrate()
    msg = r.stderr.strip()
    check(r.returncode != 0 and len(msg.splitlines()) == 1 and "analysis_jobs" in msg
          and all(c in msg for c in ("status", "created_at", "owner_email")) and "video_url" not in msg,
          "conflict: one message naming the table and the conflicting columns: %s" % msg)
    after = (columns(bad), bad.q("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"),
             bad.q("SELECT proname FROM pg_proc WHERE pronamespace = 'public'::regnamespace"))
    check(after == before, "nothing changed by the refused migrate")
    for d in (ref, db, bad):
        d.conn.close()


cluster = Cluster()
tmp = tempfile.mkdtemp(prefix="glint-supa-t-")
try:
    check(subprocess.run([sys.executable, os.path.join(SRC, "supabase", "access.py"), "--check"]).returncode == 0,
          "docs/supabase.md's matrix is current (python3 tests/supabase/access.py --write)")
    boot = cluster.connect("supabase_admin")
    boot.cursor().execute(SUPABASE_ROLES)
    boot.close()
    check(not cluster.connect("postgres").cursor().connection.get_parameter_status("is_superuser") == "on",
          "postgres is not a superuser here")

    # 1. a fresh project
    db = SupaDB(cluster, "glint_fresh")
    r = db.migrate()
    check(r.returncode == 0, "migrate as a non-superuser postgres: %s" % r.stderr.strip())
    worker_login(cluster)
    users, jobs = seed_users(db)
    check_matrix(db, "fresh", users[0], jobs[0])
    check_own_rows(db, "fresh", users[0], users[1])
    check_lints(db, "fresh")
    run_jobs(db, tmp)
    db.conn.close()

    # 2. a project migrated by 001-008 (every API role had ALL on everything): upgraded in place
    up = SupaDB(cluster, "glint_upgrade")
    apply_old(up)
    users, jobs = seed_users(up)
    anon = Api(up, "anon")
    check(anon.run("SELECT count(*) FROM user_credits")[0], "before the upgrade anon reads the balances (the issue)")
    anon.conn.close()
    r = up.migrate()
    check(r.returncode == 0 and up.one("SELECT count(*) FROM glint_migrations") == len(
        [n for n in os.listdir(SQL) if n.endswith(".sql")]), "upgrade in place: %s" % r.stderr.strip())
    check_matrix(up, "upgraded", users[0], jobs[0])
    check_own_rows(up, "upgraded", users[0], users[1])
    check_lints(up, "upgraded")
    r = up.migrate()
    check(r.returncode == 0, "migrate again: nothing to do")
    up.conn.close()

    # 3. a backend's own analysis_jobs
    check_adoption(cluster)
finally:
    cluster.stop()
    shutil.rmtree(tmp, ignore_errors=True)
report()
