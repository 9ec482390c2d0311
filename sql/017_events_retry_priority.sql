-- Job events, retry, priorities, retention (issue 14 items 3-6). docs/job-events-retry-priority.md.

-- ---- priorities: higher first; the claim stays one indexed statement ----
ALTER TABLE analysis_jobs ADD COLUMN IF NOT EXISTS priority smallint NOT NULL DEFAULT 0;
DROP INDEX IF EXISTS analysis_jobs_claim_idx;
CREATE INDEX analysis_jobs_claim_idx ON analysis_jobs (priority DESC, run_after) WHERE status = 'PENDING';

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
                            ORDER BY a.priority DESC, a.run_after LIMIT p_limit FOR UPDATE SKIP LOCKED))
    RETURNING j.id, j.user_id, j.video_url, j.mode, j.attempts, j.max_attempts, j.credits_charged;
END
$$;

-- ---- job events: every insert, status and stage change, sent by the database (API cancels and reaper rescues too) ----
-- Payload {"id","user_id","status","stage"[,"error_code"]}; each job's event is its own (a 10,000-row claim sends
-- 10,000). Statement triggers with transition tables: one function call and one query per statement instead of a
-- plpgsql call per row (measured about 2x cheaper on a claim); the UPDATE one compares old and new rows itself, so a
-- heartbeat (lease only) sends nothing. status is one of five words (CHECK); to_json escapes the rest; stage and
-- error_code are cut so a payload stays far below NOTIFY's 8000 bytes. (The payload is written out twice: a helper
-- function would get a pinned search_path from glint_apply_access, and such a function is never inlined.)
CREATE OR REPLACE FUNCTION glint_notify_job_events() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM pg_notify('glint_job_events', '{"id":"' || n.id || '","user_id":"' || n.user_id || '","status":"' || n.status
                          || '","stage":' || coalesce(to_json(left(n.stage, 64))::text, 'null')
                          || CASE WHEN n.error_code IS NULL THEN ''
                                  ELSE ',"error_code":' || to_json(left(n.error_code, 64))::text END || '}')
           FROM glint_new_rows n;
    ELSE
        PERFORM pg_notify('glint_job_events', '{"id":"' || n.id || '","user_id":"' || n.user_id || '","status":"' || n.status
                          || '","stage":' || coalesce(to_json(left(n.stage, 64))::text, 'null')
                          || CASE WHEN n.error_code IS NULL THEN ''
                                  ELSE ',"error_code":' || to_json(left(n.error_code, 64))::text END || '}')
           FROM glint_new_rows n JOIN glint_old_rows o ON o.id = n.id
          WHERE o.status IS DISTINCT FROM n.status OR o.stage IS DISTINCT FROM n.stage;
    END IF;
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS analysis_jobs_events_insert ON analysis_jobs;
CREATE TRIGGER analysis_jobs_events_insert
    AFTER INSERT ON analysis_jobs REFERENCING NEW TABLE AS glint_new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION glint_notify_job_events();

DROP TRIGGER IF EXISTS analysis_jobs_events_update ON analysis_jobs;
CREATE TRIGGER analysis_jobs_events_update
    AFTER UPDATE ON analysis_jobs REFERENCING OLD TABLE AS glint_old_rows NEW TABLE AS glint_new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION glint_notify_job_events();

-- Supabase Realtime (postgres_changes, filtered by the RLS of sql/009) reads the supabase_realtime publication.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_publication WHERE pubname = 'supabase_realtime')
       AND NOT EXISTS (SELECT 1 FROM pg_publication_tables
                        WHERE pubname = 'supabase_realtime' AND schemaname = current_schema() AND tablename = 'analysis_jobs')
    THEN
        EXECUTE format('ALTER PUBLICATION supabase_realtime ADD TABLE %I.analysis_jobs', current_schema());
    END IF;
EXCEPTION WHEN insufficient_privilege OR object_not_in_prerequisite_state THEN
    RAISE NOTICE 'analysis_jobs not added to supabase_realtime (%); see docs/job-events-retry-priority.md', SQLERRM;
END
$$;

-- ---- exactly one refund per charge: a retried job is charged again and may be refunded again ----
-- charge_seq counts the job's charges by retry (0 = the enqueue's); each ledger row carries the job's charge_seq at
-- the time it was written, and the unique index allows one refund per (job, charge_seq).
ALTER TABLE analysis_jobs ADD COLUMN IF NOT EXISTS charge_seq int NOT NULL DEFAULT 0;
ALTER TABLE credit_ledger ADD COLUMN IF NOT EXISTS charge_seq int NOT NULL DEFAULT 0;
CREATE UNIQUE INDEX IF NOT EXISTS credit_ledger_one_refund_per_charge ON credit_ledger (job_id, charge_seq)
    WHERE reason = 'refund';
DROP INDEX IF EXISTS credit_ledger_one_refund;

-- Stamps a job's ledger rows with its current charge_seq, whoever writes them (these functions, a backend's adjust).
CREATE OR REPLACE FUNCTION glint_ledger_charge_seq() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.charge_seq := coalesce((SELECT j.charge_seq FROM analysis_jobs j WHERE j.id = NEW.job_id), 0);
    RETURN NEW;
END
$$;

DROP TRIGGER IF EXISTS credit_ledger_charge_seq ON credit_ledger;
CREATE TRIGGER credit_ledger_charge_seq
    BEFORE INSERT ON credit_ledger
    FOR EACH ROW WHEN (NEW.job_id IS NOT NULL)
    EXECUTE FUNCTION glint_ledger_charge_seq();

-- As in sql/003, but per charge: gives back what the current charge took (its charge and adjustments), at most once.
CREATE OR REPLACE FUNCTION glint_refund(p_job_id uuid) RETURNS int LANGUAGE plpgsql AS $$
DECLARE
    v_user uuid;
    v_delta int;
BEGIN
    INSERT INTO credit_ledger (user_id, job_id, delta, reason)
    SELECT j.user_id, j.id,
           greatest(0, -coalesce((SELECT sum(l.delta) FROM credit_ledger l
                                   WHERE l.job_id = j.id AND l.charge_seq = j.charge_seq
                                     AND l.reason IN ('charge', 'adjust')), 0))::int,
           'refund'
      FROM analysis_jobs j WHERE j.id = p_job_id
    ON CONFLICT (job_id, charge_seq) WHERE reason = 'refund' DO NOTHING
    RETURNING user_id, delta INTO v_user, v_delta;
    IF v_user IS NULL THEN
        RETURN 0;
    END IF;
    IF v_delta > 0 THEN
        INSERT INTO user_credits (user_id, balance) VALUES (v_user, v_delta)
        ON CONFLICT (user_id) DO UPDATE SET balance = user_credits.balance + EXCLUDED.balance,
                                            updated_at = clock_timestamp();
    END IF;
    RETURN v_delta;
END
$$;

-- Ledger rows outlive their job (retention below deletes jobs): a foreign key, where an adopted schema has one, must
-- not cascade. sql/001 declares none; this converts any other to ON DELETE SET NULL.
DO $$
DECLARE
    c record;
BEGIN
    FOR c IN SELECT con.conname, pg_get_constraintdef(con.oid) AS def FROM pg_constraint con
              WHERE con.conrelid = to_regclass(format('%I.credit_ledger', current_schema())) AND con.contype = 'f'
                AND con.confrelid = to_regclass(format('%I.analysis_jobs', current_schema())) AND con.confdeltype <> 'n'
    LOOP
        EXECUTE format('ALTER TABLE credit_ledger DROP CONSTRAINT %I', c.conname);
        EXECUTE format('ALTER TABLE credit_ledger ADD CONSTRAINT %I %s ON DELETE SET NULL', c.conname,
                       regexp_replace(c.def, '\s+ON DELETE \w+( \w+)?', '', 'i'));
    END LOOP;
END
$$;

-- ---- enqueue with a priority ----
-- The final form takes every optional parameter by name (016 added p_language): replace 016's so calls with 2 to 5
-- arguments stay unambiguous.
DROP FUNCTION IF EXISTS glint_enqueue_job(uuid, text, text, numeric);
DROP FUNCTION IF EXISTS glint_enqueue_job(uuid, text, text, numeric, text);
CREATE OR REPLACE FUNCTION glint_enqueue_job(p_user_id uuid, p_video_url text, p_mode text DEFAULT 'standard',
                                             p_duration_seconds numeric DEFAULT NULL, p_language text DEFAULT NULL,
                                             p_priority int DEFAULT 0)
RETURNS uuid LANGUAGE plpgsql AS $$
DECLARE
    v_cost int := glint_credit_cost(p_mode, p_duration_seconds);
    v_id uuid;
BEGIN
    IF p_language IS NOT NULL AND (length(p_language) > 35 OR p_language !~ '^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$') THEN
        RAISE EXCEPTION 'invalid_language' USING ERRCODE = 'invalid_parameter_value',
            DETAIL = 'a BCP-47 language tag such as de, pt-BR or zh-Hant is expected';
    END IF;
    IF p_priority IS NULL OR p_priority NOT BETWEEN -32768 AND 32767 THEN
        RAISE EXCEPTION 'glint_enqueue_job: priority must be a smallint' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    UPDATE user_credits SET balance = balance - v_cost, updated_at = clock_timestamp()
     WHERE user_id = p_user_id AND balance >= v_cost;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'insufficient_credits' USING DETAIL = format('cost %s credits', v_cost);
    END IF;
    INSERT INTO analysis_jobs (user_id, video_url, mode, credits_charged, language, priority)
    VALUES (p_user_id, p_video_url, p_mode, v_cost, p_language, p_priority) RETURNING id INTO v_id;
    INSERT INTO credit_ledger (user_id, job_id, delta, reason) VALUES (p_user_id, v_id, -v_cost, 'charge');
    RETURN v_id;
END
$$;

-- ---- retry: a FAILED or CANCELLED job back to PENDING, charged again, in one transaction ----
-- outcome: 'retried'; 'not_retryable' (status is not FAILED/CANCELLED; nothing changed); 'insufficient_credits'
-- (the balance does not cover the charge; nothing changed). No row: no such job. The charge is the enqueue's
-- (glint_credit_cost of the mode, duration not yet known; a deep job is reconciled again once it is).
CREATE OR REPLACE FUNCTION glint_retry_job(p_id uuid, OUT status text, OUT outcome text, OUT credits int)
RETURNS SETOF record LANGUAGE plpgsql AS $$
DECLARE
    v_job analysis_jobs%ROWTYPE;
    v_metered boolean;
BEGIN
    SELECT * INTO v_job FROM analysis_jobs j WHERE j.id = p_id FOR UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF v_job.status NOT IN ('FAILED', 'CANCELLED') THEN
        status := v_job.status; outcome := 'not_retryable'; credits := 0;
        RETURN NEXT;
        RETURN;
    END IF;
    -- a job inserted without glint_enqueue_job (no charge in the ledger) stays unmetered, as in glint_reconcile_credits
    v_metered := EXISTS (SELECT 1 FROM credit_ledger l WHERE l.job_id = p_id AND l.reason = 'charge');
    credits := CASE WHEN v_metered THEN glint_credit_cost(v_job.mode, NULL) ELSE 0 END;
    UPDATE user_credits u SET balance = u.balance - credits, updated_at = clock_timestamp()
     WHERE v_metered AND u.user_id = v_job.user_id AND u.balance >= credits;
    IF v_metered AND NOT FOUND THEN
        status := v_job.status; outcome := 'insufficient_credits';
        RETURN NEXT;
        RETURN;
    END IF;
    UPDATE analysis_jobs j SET status = 'PENDING', attempts = 0, run_after = clock_timestamp(), locked_by = NULL,
           lease_expires_at = NULL, started_at = NULL, finished_at = NULL, stage = 'retried', error_code = NULL,
           error_message = NULL, credits_charged = credits, charge_seq = j.charge_seq + 1, updated_at = clock_timestamp()
     WHERE j.id = p_id;
    DELETE FROM analysis_results r WHERE r.job_id = p_id;
    IF v_metered THEN
        INSERT INTO credit_ledger (user_id, job_id, delta, reason) VALUES (v_job.user_id, p_id, -credits, 'charge');
    END IF;
    status := 'PENDING'; outcome := 'retried';
    RETURN NEXT;
END
$$;

-- ---- retention: finished jobs older than p_days go, with their results; ledger rows stay ----
-- One worker at a time (a transaction-level advisory lock: the others return 0 at once), p_limit jobs per call,
-- oldest first through the created_at index (a job finishes after it was created). Returns the jobs deleted.
CREATE OR REPLACE FUNCTION glint_purge_jobs(p_days int, p_limit int DEFAULT 500) RETURNS int LANGUAGE plpgsql AS $$
DECLARE
    v_cutoff timestamptz := clock_timestamp() - make_interval(days => p_days);
    v_n int;
BEGIN
    IF p_days IS NULL OR p_days < 1 OR p_limit NOT BETWEEN 1 AND 10000 THEN
        RAISE EXCEPTION 'glint_purge_jobs: bad arguments' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT pg_try_advisory_xact_lock(hashtext('glint_purge_jobs')) THEN
        RETURN 0;
    END IF;
    DELETE FROM analysis_jobs j
     WHERE j.id = ANY(ARRAY(SELECT a.id FROM analysis_jobs a
                             WHERE a.created_at < v_cutoff AND a.finished_at < v_cutoff
                               AND a.status IN ('COMPLETED', 'FAILED', 'CANCELLED')
                             ORDER BY a.created_at LIMIT p_limit FOR UPDATE SKIP LOCKED));
    GET DIAGNOSTICS v_n = ROW_COUNT;
    RETURN v_n;
END
$$;

-- ---- who may do what (sql/009's glint_access): retry charges through the ledger (the backend may call it too);
-- retention deletes under an advisory lock ----
INSERT INTO glint_access (name, kind, definer, service_role) VALUES
    ('glint_retry_job', 'function', true, 'EXECUTE'),
    ('glint_purge_jobs', 'function', true, '')
ON CONFLICT (name) DO NOTHING;
SELECT glint_apply_access();
