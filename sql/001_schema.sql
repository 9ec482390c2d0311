-- Jobs, results and credits. Contract: ../shared/DESIGN.md §3.
CREATE TABLE IF NOT EXISTS analysis_jobs (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id          uuid NOT NULL,
    video_url        text NOT NULL,
    mode             text NOT NULL DEFAULT 'standard' CHECK (mode IN ('standard', 'deep')),
    status           text NOT NULL DEFAULT 'PENDING'
                     CHECK (status IN ('PENDING', 'PROCESSING', 'COMPLETED', 'FAILED', 'CANCELLED')),
    credits_charged  int NOT NULL DEFAULT 0 CHECK (credits_charged >= 0),
    attempts         int NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts     int NOT NULL DEFAULT 3 CHECK (max_attempts BETWEEN 1 AND 100),
    run_after        timestamptz NOT NULL DEFAULT now(),
    locked_by        text,
    lease_expires_at timestamptz,
    stage            text,
    error_code       text,
    error_message    text,
    created_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    started_at       timestamptz,
    finished_at      timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- Serves the claim: only PENDING rows, in run_after order.
CREATE INDEX IF NOT EXISTS analysis_jobs_claim_idx ON analysis_jobs (run_after) WHERE status = 'PENDING';
-- Serves the reaper.
CREATE INDEX IF NOT EXISTS analysis_jobs_lease_idx ON analysis_jobs (lease_expires_at) WHERE status = 'PROCESSING';
-- Serves listings (dashboard, keyset pagination) and per-user lookups.
CREATE INDEX IF NOT EXISTS analysis_jobs_created_idx ON analysis_jobs (created_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS analysis_jobs_user_idx ON analysis_jobs (user_id, created_at DESC);

CREATE TABLE IF NOT EXISTS analysis_results (
    job_id          uuid PRIMARY KEY REFERENCES analysis_jobs (id) ON DELETE CASCADE,
    result          jsonb NOT NULL,
    model           text,
    prompt_tokens   int,
    output_tokens   int,
    thoughts_tokens int,
    timings         jsonb,
    created_at      timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE TABLE IF NOT EXISTS user_credits (
    user_id    uuid PRIMARY KEY,
    balance    int NOT NULL DEFAULT 0 CHECK (balance >= 0),
    updated_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- Append-only. A job has at most one refund: the unique index is what makes "exactly once" hold
-- even when two workers (or a worker and the API) race to fail the same job.
CREATE TABLE IF NOT EXISTS credit_ledger (
    id         bigserial PRIMARY KEY,
    user_id    uuid NOT NULL,
    job_id     uuid,
    delta      int NOT NULL,
    reason     text NOT NULL CHECK (reason IN ('charge', 'refund', 'adjust')),
    created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE UNIQUE INDEX IF NOT EXISTS credit_ledger_one_refund ON credit_ledger (job_id) WHERE reason = 'refund';
CREATE INDEX IF NOT EXISTS credit_ledger_job_idx ON credit_ledger (job_id);
CREATE INDEX IF NOT EXISTS credit_ledger_user_idx ON credit_ledger (user_id, created_at);
