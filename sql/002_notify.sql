-- Wake workers. Inserts: one statement-level trigger, so a 10,000-row INSERT is one notification.
-- Requeues (retry, lease rescue, release at shutdown, a backend's manual UPDATE): a row trigger whose WHEN clause
-- is evaluated without calling any function; the payload is constant, so PostgreSQL folds all of a transaction's
-- notifications into one.
CREATE OR REPLACE FUNCTION glint_notify_jobs() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('glint_jobs', '');
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS analysis_jobs_notify_insert ON analysis_jobs;
CREATE TRIGGER analysis_jobs_notify_insert
    AFTER INSERT ON analysis_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION glint_notify_jobs();

DROP TRIGGER IF EXISTS analysis_jobs_notify_requeue ON analysis_jobs;
CREATE TRIGGER analysis_jobs_notify_requeue
    AFTER UPDATE OF status ON analysis_jobs
    FOR EACH ROW WHEN (NEW.status = 'PENDING' AND OLD.status IS DISTINCT FROM 'PENDING')
    EXECUTE FUNCTION glint_notify_jobs();
