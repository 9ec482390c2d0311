-- Result reuse and output language (docs/reuse-and-language.md).
--   analysis_jobs.language      the language the analysis is written in (BCP-47 tag; NULL = the transcript's)
--   analysis_jobs.analysis_key  what makes two analyses interchangeable: video identity, mode, model, prompt version,
--                               language. Set by glint_reuse_job when the worker starts a job.
--   analysis_results.reused_from  the job whose analysis was copied (NULL: this row's analysis really ran)
-- A job whose key matches a fresh COMPLETED analysis is completed from it at once; one whose key is being analysed
-- by another live job waits (PENDING, no slot, no lease) and is woken when that job leaves PROCESSING.

ALTER TABLE analysis_jobs ADD COLUMN IF NOT EXISTS language text;
ALTER TABLE analysis_jobs ADD COLUMN IF NOT EXISTS analysis_key text;
ALTER TABLE analysis_results ADD COLUMN IF NOT EXISTS reused_from uuid;

-- A CHECK is safe here (sql/006): no UPDATE changes language, and the expression is immutable, so a row that passed at
-- INSERT passes on every later claim. Shape of BCP-47 (language, then subtags), not a registry lookup.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'analysis_jobs_language_check'
                                                 AND conrelid = 'analysis_jobs'::regclass) THEN
        ALTER TABLE analysis_jobs ADD CONSTRAINT analysis_jobs_language_check
            CHECK (language IS NULL OR (length(language) <= 35 AND language ~ '^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$'));
    END IF;
END
$$;

-- Serves the reuse lookups (a fresh COMPLETED analysis, a live PROCESSING one, the waiting followers) by key.
CREATE INDEX IF NOT EXISTS analysis_jobs_key_idx ON analysis_jobs (analysis_key, status, finished_at DESC)
    WHERE analysis_key IS NOT NULL;

-- The old 4-argument signature would make every call ambiguous next to the new one: replace it. Existing callers
-- (positional or named, 2 to 4 arguments) keep working through the defaults.
DROP FUNCTION IF EXISTS glint_enqueue_job(uuid, text, text, numeric);
CREATE OR REPLACE FUNCTION glint_enqueue_job(p_user_id uuid, p_video_url text, p_mode text DEFAULT 'standard',
                                             p_duration_seconds numeric DEFAULT NULL, p_language text DEFAULT NULL)
RETURNS uuid LANGUAGE plpgsql AS $$
DECLARE
    v_cost int := glint_credit_cost(p_mode, p_duration_seconds);
    v_id uuid;
BEGIN
    IF p_language IS NOT NULL AND (length(p_language) > 35 OR p_language !~ '^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$') THEN
        RAISE EXCEPTION 'invalid_language' USING ERRCODE = 'invalid_parameter_value',
            DETAIL = 'a BCP-47 language tag such as de, pt-BR or zh-Hant is expected';
    END IF;
    UPDATE user_credits SET balance = balance - v_cost, updated_at = clock_timestamp()
     WHERE user_id = p_user_id AND balance >= v_cost;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'insufficient_credits' USING DETAIL = format('cost %s credits', v_cost);
    END IF;
    INSERT INTO analysis_jobs (user_id, video_url, mode, credits_charged, language)
    VALUES (p_user_id, p_video_url, p_mode, v_cost, p_language) RETURNING id INTO v_id;
    INSERT INTO credit_ledger (user_id, job_id, delta, reason) VALUES (p_user_id, v_id, -v_cost, 'charge');
    RETURN v_id;
END
$$;

-- Called by the worker when it starts a claimed job it holds. p_key_base is the worker's part of the key (video
-- identity, mode, model, prompt version); the job's language completes it. Returns what the worker does next:
--   'reused'  the job is COMPLETED with a copy of the fresh analysis source_id (tokens_saved: what that one cost)
--   'wait'    another live job is analysing the same key: this one is PENDING again (attempt not counted), woken by
--             glint_wake_followers when that job leaves PROCESSING, or at its lease's end at the latest
--   'run'     analyse it (p_key_base NULL or p_ttl_hours 0: reuse is off, only language is answered)
--   'lost'    the job is no longer this worker's
-- An advisory lock per key serialises the decision, so of N simultaneous jobs exactly one runs. Credits: the job keeps
-- its charge; a deep job is reconciled to the cost its source was reconciled to (same video, same duration) and is not
-- reused when the balance does not cover that ('run': the normal path then fails it as insufficient_credits).
CREATE OR REPLACE FUNCTION glint_reuse_job(p_id uuid, p_worker text, p_key_base text, p_ttl_hours int,
                                           OUT action text, OUT language text, OUT source_id uuid, OUT tokens_saved bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_job analysis_jobs%ROWTYPE;
    v_key text;
    v_src record;
    v_lease timestamptz;
BEGIN
    SELECT * INTO v_job FROM analysis_jobs j WHERE j.id = p_id AND j.status = 'PROCESSING' AND j.locked_by = p_worker
       FOR UPDATE;
    IF NOT FOUND THEN
        action := 'lost';
        RETURN;
    END IF;
    language := v_job.language;
    action := 'run';
    IF p_key_base IS NULL OR coalesce(p_ttl_hours, 0) <= 0 THEN
        RETURN;
    END IF;
    v_key := p_key_base || '|' || coalesce(lower(v_job.language), '');
    PERFORM pg_advisory_xact_lock(hashtextextended(v_key, 16));
    UPDATE analysis_jobs SET analysis_key = v_key WHERE id = p_id;
    -- a fresh analysis that really ran (copies are not sources: the age is the analysis's own)
    SELECT j.id, j.credits_charged, r.result, r.model, r.prompt_tokens, r.output_tokens, r.thoughts_tokens,
           EXISTS (SELECT 1 FROM credit_ledger l WHERE l.job_id = j.id AND l.reason = 'charge') AS metered
      INTO v_src
      FROM analysis_jobs j JOIN analysis_results r ON r.job_id = j.id
     WHERE j.analysis_key = v_key AND j.status = 'COMPLETED' AND j.id <> p_id AND r.reused_from IS NULL
       AND j.finished_at > clock_timestamp() - make_interval(hours => p_ttl_hours)
     ORDER BY j.finished_at DESC LIMIT 1;
    IF FOUND THEN
        IF v_job.mode = 'deep' AND v_src.metered AND v_src.credits_charged > 0
           AND glint_reconcile_credits(p_id, p_worker, (v_src.credits_charged / 15) * 300) = 'insufficient' THEN
            RETURN; -- 'run'
        END IF;
        INSERT INTO analysis_results (job_id, result, model, timings, reused_from)
        VALUES (p_id, v_src.result, v_src.model, jsonb_build_object('reused_from', v_src.id), v_src.id)
        ON CONFLICT (job_id) DO UPDATE SET result = EXCLUDED.result, model = EXCLUDED.model, prompt_tokens = NULL,
               output_tokens = NULL, thoughts_tokens = NULL, timings = EXCLUDED.timings, reused_from = EXCLUDED.reused_from,
               created_at = clock_timestamp();
        UPDATE analysis_jobs SET status = 'COMPLETED', finished_at = clock_timestamp(), lease_expires_at = NULL,
               stage = 'reused', error_code = NULL, error_message = NULL, updated_at = clock_timestamp()
         WHERE id = p_id;
        action := 'reused';
        source_id := v_src.id;
        tokens_saved := coalesce(v_src.prompt_tokens, 0) + coalesce(v_src.output_tokens, 0) + coalesce(v_src.thoughts_tokens, 0);
        RETURN;
    END IF;
    -- an analysis under way under a live lease (a dead worker's job is not waited for: this one runs)
    SELECT max(j.lease_expires_at) INTO v_lease FROM analysis_jobs j
     WHERE j.analysis_key = v_key AND j.status = 'PROCESSING' AND j.id <> p_id AND j.lease_expires_at > clock_timestamp();
    IF v_lease IS NOT NULL THEN
        UPDATE analysis_jobs SET status = 'PENDING', attempts = greatest(attempts - 1, 0), locked_by = NULL,
               lease_expires_at = NULL, run_after = v_lease + interval '1 second', stage = 'waiting_for_analysis',
               updated_at = clock_timestamp()
         WHERE id = p_id;
        action := 'wait';
    END IF;
END
$$;

-- Wakes the jobs waiting for an analysis when the job analysing it leaves PROCESSING, whatever the way (completed,
-- failed, retry, cancelled, rescued, released): they run again at once and either copy its result or, if it failed,
-- the first of them analyses. Takes the key's lock so a job deciding to wait at this moment is either seen here or
-- sees this job's outcome.
CREATE OR REPLACE FUNCTION glint_wake_followers() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended(NEW.analysis_key, 16));
    UPDATE analysis_jobs SET run_after = clock_timestamp(), updated_at = clock_timestamp()
     WHERE analysis_key = NEW.analysis_key AND status = 'PENDING' AND stage = 'waiting_for_analysis' AND id <> NEW.id;
    IF FOUND THEN
        PERFORM pg_notify('glint_jobs', '');
    END IF;
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS analysis_jobs_wake_followers ON analysis_jobs;
CREATE TRIGGER analysis_jobs_wake_followers
    AFTER UPDATE OF status ON analysis_jobs
    FOR EACH ROW WHEN (OLD.status = 'PROCESSING' AND NEW.status <> 'PROCESSING' AND NEW.analysis_key IS NOT NULL
                       AND NEW.stage IS DISTINCT FROM 'waiting_for_analysis') -- a follower parking itself wakes no one
    EXECUTE FUNCTION glint_wake_followers();

-- ---- who may do what: sql/015's glint_apply_access() (009's model with the governor's objects), plus glint_reuse_job ----

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
                                       'glint_reuse_job'];
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
