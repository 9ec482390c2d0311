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

-- ---- who may do what (sql/009's glint_access): result reuse, guarded by status and locked_by like the others ----
INSERT INTO glint_access (name, kind, definer) VALUES ('glint_reuse_job', 'function', true) ON CONFLICT (name) DO NOTHING;
SELECT glint_apply_access();
