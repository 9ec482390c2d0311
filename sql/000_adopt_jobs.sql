-- Adopting an analysis_jobs table a backend created before it ran this worker's migrations (001 only creates the table
-- when it is missing). Runs first, in the same transaction as every other pending migration (handlers/migrate.c), so
-- either the table is brought to the contract of 001 — missing columns added with their defaults, NOT NULLs, CHECKs and
-- the primary key — and the rest of the migrations follow, or one error names the table and every conflicting column
-- and nothing at all is changed. A table this worker created (001 recorded) or no table at all: nothing to do.
DO $$
DECLARE
    -- the contract of sql/001: column, type, default, NOT NULL, CHECK over the column
    v_contract CONSTANT text[][] := ARRAY[
        ['id', 'uuid', 'gen_random_uuid()', 't', NULL],
        ['user_id', 'uuid', NULL, 't', NULL],
        ['video_url', 'text', NULL, 't', NULL],
        ['mode', 'text', '''standard''', 't', 'mode IN (''standard'', ''deep'')'],
        ['status', 'text', '''PENDING''', 't', 'status IN (''PENDING'', ''PROCESSING'', ''COMPLETED'', ''FAILED'', ''CANCELLED'')'],
        ['credits_charged', 'integer', '0', 't', 'credits_charged >= 0'],
        ['attempts', 'integer', '0', 't', 'attempts >= 0'],
        ['max_attempts', 'integer', '3', 't', 'max_attempts BETWEEN 1 AND 100'],
        ['run_after', 'timestamp with time zone', 'now()', 't', NULL],
        ['locked_by', 'text', NULL, 'f', NULL],
        ['lease_expires_at', 'timestamp with time zone', NULL, 'f', NULL],
        ['stage', 'text', NULL, 'f', NULL],
        ['error_code', 'text', NULL, 'f', NULL],
        ['error_message', 'text', NULL, 'f', NULL],
        ['created_at', 'timestamp with time zone', 'clock_timestamp()', 't', NULL],
        ['started_at', 'timestamp with time zone', NULL, 'f', NULL],
        ['finished_at', 'timestamp with time zone', NULL, 'f', NULL],
        ['updated_at', 'timestamp with time zone', 'clock_timestamp()', 't', NULL]];
    v_rel regclass := to_regclass(format('%I.analysis_jobs', current_schema()));
    v_conflicts text[] := '{}';
    v_pk text[];
    v_type text;
    v_bad boolean;
    c text[];
    r record;
BEGIN
    IF v_rel IS NULL OR EXISTS (SELECT 1 FROM glint_migrations WHERE name = '001_schema.sql') THEN
        RETURN;
    END IF;
    -- 1. judge everything before changing anything
    FOREACH c SLICE 1 IN ARRAY v_contract LOOP
        SELECT format_type(a.atttypid, a.atttypmod) INTO v_type
          FROM pg_attribute a WHERE a.attrelid = v_rel AND a.attname = c[1] AND a.attnum > 0 AND NOT a.attisdropped;
        CONTINUE WHEN NOT FOUND;
        IF v_type <> c[2] THEN
            v_conflicts := v_conflicts || format('%s (%s, the contract says %s)', c[1], v_type, c[2]);
            CONTINUE;
        END IF;
        EXECUTE format('SELECT EXISTS (SELECT 1 FROM %s WHERE %s)', v_rel,
                       concat_ws(' OR ', CASE WHEN c[4] = 't' AND c[3] IS NULL THEN format('%I IS NULL', c[1]) END,
                                 CASE WHEN c[5] IS NOT NULL THEN format('NOT (%s)', c[5]) END, 'false'))
            INTO v_bad;
        IF v_bad THEN
            v_conflicts := v_conflicts || format('%s (rows with NULL or values outside %s)', c[1], coalesce(c[5], 'NOT NULL'));
        END IF;
    END LOOP;
    -- a column of the backend's own that an INSERT naming only the contract's columns cannot fill
    FOR r IN SELECT a.attname FROM pg_attribute a
              WHERE a.attrelid = v_rel AND a.attnum > 0 AND NOT a.attisdropped AND a.attnotnull AND NOT a.atthasdef
                AND a.attidentity = '' AND a.attgenerated = ''
                AND a.attname <> ALL (SELECT unnest(v_contract[:][1:1])) LOOP
        v_conflicts := v_conflicts || format('%s (NOT NULL without a default: glint_enqueue_job cannot fill it)', r.attname);
    END LOOP;
    SELECT array_agg(a.attname ORDER BY a.attname) INTO v_pk
      FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
     WHERE i.indrelid = v_rel AND i.indisprimary;
    IF v_pk IS NOT NULL AND v_pk <> ARRAY['id']::text[] THEN
        v_conflicts := v_conflicts || format('id (the primary key is on %s)', array_to_string(v_pk, ', '));
    END IF;
    IF cardinality(v_conflicts) > 0 THEN
        RAISE EXCEPTION 'table %.analysis_jobs exists and conflicts with glint-worker''s contract in column(s): %; nothing was changed',
            current_schema(), array_to_string(v_conflicts, '; ')
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'rename the table or fix those columns, then run migrate again (docs/supabase.md, "Upgrading")';
    END IF;
    -- 2. bring it to the contract
    FOREACH c SLICE 1 IN ARRAY v_contract LOOP
        EXECUTE format('ALTER TABLE %s ADD COLUMN IF NOT EXISTS %I %s', v_rel, c[1], c[2]);
        IF c[3] IS NOT NULL THEN
            EXECUTE format('ALTER TABLE %s ALTER COLUMN %I SET DEFAULT %s', v_rel, c[1], c[3]);
            EXECUTE format('UPDATE %s SET %I = DEFAULT WHERE %I IS NULL', v_rel, c[1], c[1]);
        END IF;
        IF c[4] = 't' THEN
            EXECUTE format('ALTER TABLE %s ALTER COLUMN %I SET NOT NULL', v_rel, c[1]);
        END IF;
        IF c[5] IS NOT NULL AND NOT EXISTS (SELECT 1 FROM pg_constraint
                                             WHERE conrelid = v_rel AND conname = format('analysis_jobs_%s_check', c[1])) THEN
            EXECUTE format('ALTER TABLE %s ADD CONSTRAINT %I CHECK (%s)', v_rel, format('analysis_jobs_%s_check', c[1]), c[5]);
        END IF;
    END LOOP;
    IF v_pk IS NULL THEN
        EXECUTE format('ALTER TABLE %s ADD PRIMARY KEY (id)', v_rel);
    END IF;
    -- rows the backend's previous worker left PROCESSING: a lease that has expired, so the reaper rescues them
    EXECUTE format('UPDATE %s SET lease_expires_at = clock_timestamp() WHERE status = ''PROCESSING'' AND lease_expires_at IS NULL',
                   v_rel);
    RAISE NOTICE 'adopted %: brought to the contract of 001_schema.sql', v_rel;
END
$$;
