-- The Gemini quota governor (handlers/governor.c): one row per model, shared by every worker instance.
--
-- Gemini's quotas (requests and tokens per minute) belong to the project and model, not to a process. Each worker asks
-- glint_gemini_admit before a generateContent call; the answer is a reservation: "go in wait_ms". Reservations are
-- spaced evenly (GCRA, a leaky bucket without burst): request k+1 may start window/rpm after request k, and a call of
-- n estimated tokens pushes the token schedule by n * window/tpm. Even spacing keeps any sliding window of one
-- `window` under the limit, whichever way the server counts. One locked row, one call, one round trip.
--   next_request_at  earliest start of the next request under the RPM limit ('-infinity' = now)
--   next_token_at    same for the TPM limit; glint_gemini_settle moves it by (real - estimated) tokens afterwards
--   paused_until     a 429 with RetryInfo.retryDelay seen by any worker: nobody starts a call before then
--   requests, tokens admitted totals (estimate, corrected by settle), for operators
-- The worker (glint_worker) reaches the table only through the three SECURITY DEFINER functions below.

CREATE TABLE IF NOT EXISTS glint_gemini_budget (
    model           text PRIMARY KEY,
    next_request_at timestamptz NOT NULL DEFAULT '-infinity',
    next_token_at   timestamptz NOT NULL DEFAULT '-infinity',
    paused_until    timestamptz NOT NULL DEFAULT '-infinity',
    requests        bigint NOT NULL DEFAULT 0,
    tokens          bigint NOT NULL DEFAULT 0,
    updated_at      timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- Milliseconds from p_now until p_at, rounded up; 0 when p_at is not later.
CREATE OR REPLACE FUNCTION glint_gemini_ms_until(p_at timestamptz, p_now timestamptz) RETURNS integer
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, public AS $$
    SELECT CASE WHEN p_at <= p_now THEN 0
                ELSE least(ceil(extract(epoch FROM p_at - p_now) * 1000), 2147483647)::integer END
$$;

-- A reservation for one call of p_est_tokens under p_rpm requests and p_tpm tokens per p_window_ms (0 = no limit).
-- admitted: the slot is held, start in wait_ms. Not admitted: the model is paused, nothing was reserved; ask again in
-- wait_ms. Without limits only the pause is read (no row is written or locked).
CREATE OR REPLACE FUNCTION glint_gemini_admit(p_model text, p_est_tokens bigint, p_rpm integer, p_tpm bigint,
                                              p_window_ms integer, OUT admitted boolean, OUT wait_ms integer)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    v_now timestamptz := clock_timestamp();
    v_window interval := make_interval(secs => greatest(p_window_ms, 1) / 1000.0);
    v_est bigint := greatest(coalesce(p_est_tokens, 0), 0);
    b public.glint_gemini_budget%ROWTYPE;
    v_at timestamptz;
BEGIN
    IF coalesce(p_rpm, 0) <= 0 AND coalesce(p_tpm, 0) <= 0 THEN
        SELECT * INTO b FROM public.glint_gemini_budget WHERE model = p_model;
        wait_ms := public.glint_gemini_ms_until(coalesce(b.paused_until, '-infinity'), v_now);
        admitted := wait_ms = 0;
        RETURN;
    END IF;
    INSERT INTO public.glint_gemini_budget (model) VALUES (p_model) ON CONFLICT (model) DO NOTHING;
    SELECT * INTO b FROM public.glint_gemini_budget WHERE model = p_model FOR UPDATE;
    IF b.paused_until > v_now THEN
        admitted := false;
        wait_ms := public.glint_gemini_ms_until(b.paused_until, v_now);
        RETURN;
    END IF;
    v_at := greatest(v_now, CASE WHEN p_rpm > 0 THEN b.next_request_at ELSE '-infinity' END,
                     CASE WHEN p_tpm > 0 THEN b.next_token_at ELSE '-infinity' END);
    UPDATE public.glint_gemini_budget
       SET next_request_at = CASE WHEN p_rpm > 0 THEN v_at + v_window / p_rpm ELSE next_request_at END,
           next_token_at = CASE WHEN p_tpm > 0 THEN v_at + v_window * (v_est::double precision / p_tpm)
                                ELSE next_token_at END,
           requests = requests + 1, tokens = tokens + v_est, updated_at = v_now
     WHERE model = p_model;
    admitted := true;
    wait_ms := public.glint_gemini_ms_until(v_at, v_now);
END
$$;

-- After the call: p_delta_tokens = real - estimated (negative gives back what was over-reserved).
CREATE OR REPLACE FUNCTION glint_gemini_settle(p_model text, p_delta_tokens bigint, p_tpm bigint, p_window_ms integer)
RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    UPDATE public.glint_gemini_budget
       SET next_token_at = CASE WHEN p_tpm > 0 AND next_token_at > '-infinity'
                                THEN next_token_at + make_interval(secs => greatest(p_window_ms, 1) / 1000.0)
                                                     * (p_delta_tokens::double precision / p_tpm)
                                ELSE next_token_at END,
           tokens = greatest(tokens + p_delta_tokens, 0), updated_at = clock_timestamp()
     WHERE model = p_model
$$;

-- A 429 with RetryInfo.retryDelay: nobody (in any instance) starts a call to this model for p_ms from now.
CREATE OR REPLACE FUNCTION glint_gemini_pause(p_model text, p_ms integer) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    INSERT INTO public.glint_gemini_budget AS b (model, paused_until)
    VALUES (p_model, clock_timestamp() + make_interval(secs => greatest(p_ms, 0) / 1000.0))
    ON CONFLICT (model) DO UPDATE
       SET paused_until = greatest(b.paused_until, EXCLUDED.paused_until), updated_at = clock_timestamp()
$$;

-- ---- who may do what (sql/009's glint_access) ----
-- glint_gemini_budget: RLS and no grant or policy for any role; the worker reaches it only through the three definer
-- functions. glint_gemini_ms_until has no row: a helper no role may call.
INSERT INTO glint_access (name, kind, definer) VALUES
    ('glint_gemini_budget', 'table', false),
    ('glint_gemini_admit', 'function', true),
    ('glint_gemini_settle', 'function', true),
    ('glint_gemini_pause', 'function', true)
ON CONFLICT (name) DO NOTHING;
SELECT glint_apply_access();
