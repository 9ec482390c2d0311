#include "handlers/cli.h"
#include "handlers/api.h"
#include "handlers/app.h"
#include "handlers/url.h"
#include "reactor/log.h"
#include <ctype.h>
#include <libpq-fe.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NIL_USER "00000000-0000-0000-0000-000000000000"
#define DRAIN_POLL_MS 10
#define DRAIN_MAX_MS 3000

static bool is_help(const char *s)
{
    return strcmp(s, "--help") == 0 || strcmp(s, "-h") == 0;
}

/* One option at argv[*i]; -1 (reason printed) when the command does not take it or its value is missing. */
static int parse_option(const gw_cli_command_t *cmd, int argc, char **argv, int *i, gw_cli_args_t *a)
{
    const char *s = argv[*i];
    bool has_value = *i + 1 < argc;
    if ((cmd->options & GW_CLI_OPT_MODE) && strcmp(s, "--mode") == 0 && has_value) {
        a->mode = argv[++*i];
    } else if ((cmd->options & GW_CLI_OPT_MODE) && strcmp(s, "--deep") == 0) {
        a->mode = "deep";
    } else if ((cmd->options & GW_CLI_OPT_USER) && strcmp(s, "--user") == 0 && has_value) {
        a->user = argv[++*i];
    } else if ((cmd->options & GW_CLI_OPT_PRIORITY) && strcmp(s, "--priority") == 0 && has_value) {
        a->priority = argv[++*i];
    } else if ((cmd->options & GW_CLI_OPT_LANGUAGE) && strcmp(s, "--language") == 0 && has_value) {
        a->language = argv[++*i];
    } else if ((cmd->options & GW_CLI_OPT_JSON) && strcmp(s, "--json") == 0) {
        a->json = true;
    } else {
        fprintf(stderr, "glint-worker %s: unknown or incomplete option \"%s\" (try glint-worker %s --help)\n", cmd->name, s,
                cmd->name);
        return -1;
    }
    return 0;
}

int gw_cli_parse(const gw_cli_command_t *cmd, int argc, char **argv, gw_cli_args_t *a)
{
    memset(a, 0, sizeof(*a));
    a->mode = "standard";
    a->priority = "0";
    for (int i = 1; i < argc; i++) {
        if (is_help(argv[i])) {
            gw_cli_print_usage(cmd, stdout);
            return 1;
        }
    }
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        if (s[0] == '-' && strcmp(s, "-") != 0) {
            if (parse_option(cmd, argc, argv, &i, a) != 0)
                return -1;
        } else if (cmd->positional != NULL && a->positional == NULL) {
            a->positional = s;
        } else {
            fprintf(stderr, "glint-worker %s: unexpected argument \"%s\" (try glint-worker %s --help)\n", cmd->name, s, cmd->name);
            return -1;
        }
    }
    if (cmd->positional != NULL && a->positional == NULL) {
        fprintf(stderr, "glint-worker %s: missing %s (try glint-worker %s --help)\n", cmd->name, cmd->positional, cmd->name);
        return -1;
    }
    char *end;
    long prio = strtol(a->priority, &end, 10);
    if (*a->priority == '\0' || *end != '\0' || prio < -32768 || prio > 32767) {
        fprintf(stderr, "glint-worker %s: --priority must be an integer from -32768 to 32767, not \"%s\"\n", cmd->name,
                a->priority);
        return -1;
    }
    if (strcmp(a->mode, "standard") != 0 && strcmp(a->mode, "deep") != 0) {
        fprintf(stderr, "glint-worker %s: --mode must be standard or deep, not \"%s\"\n", cmd->name, a->mode);
        return -1;
    }
    return 0;
}

void gw_cli_print_usage(const gw_cli_command_t *cmd, FILE *out)
{
    fprintf(out, "usage: glint-worker %s%s%s\n\n%s\n", cmd->name, *cmd->synopsis ? " " : "", cmd->synopsis, cmd->summary);
    if (*cmd->details)
        fprintf(out, "\n%s", cmd->details);
    fprintf(out, "\nExit status: 0 done, 1 failed, 2 usage or configuration error.\n"
                 "Configuration comes from the environment and ./.env (glint-worker --help lists every variable).\n");
}

/* The URL check the worker will apply, up front: a clear error now instead of a FAILED job later. */
static int check_url(gw_settings_t *cfg, const char *cmd, const char *url)
{
    char id[16];
    char *canonical = NULL;
    const char *code = NULL, *msg = NULL;
    if (gw_url_normalize(url, cfg->allowed_video_hosts, id, &canonical, &code, &msg) != 0) {
        fprintf(stderr, "glint-worker %s: %s (%s)\n", cmd, msg ? msg : "not a video URL we can analyse",
                code ? code : "invalid_url");
        return -1;
    }
    free(canonical);
    return 0;
}

static void on_notice(void *arg, const char *message)
{
    char msg[512];
    snprintf(msg, sizeof(msg), "%s", message);
    msg[strcspn(msg, "\n")] = '\0';
    gw_warn("pg: server says: %s", msg);
}

static PGconn *connect_db(gw_settings_t *cfg, const char *cmd)
{
    PGconn *c = PQconnectdb(cfg->database_url);
    PQsetNoticeProcessor(c, on_notice, NULL);
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "glint-worker %s: cannot connect to the database: %s", cmd, PQerrorMessage(c));
        PQfinish(c);
        return NULL;
    }
    return c;
}

/* ---- enqueue ---- */

static void explain_enqueue_error(PGconn *c, PGresult *res, const gw_cli_args_t *a)
{
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    const char *primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    if (state != NULL && strcmp(state, "P0001") == 0 && primary != NULL && strcmp(primary, "insufficient_credits") == 0) {
        const char *detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
        const char *params[] = {a->user};
        PGresult *b = PQexecParams(c, "SELECT balance FROM user_credits WHERE user_id = $1::uuid", 1, NULL, params, NULL, NULL, 0);
        bool known = PQresultStatus(b) == PGRES_TUPLES_OK && PQntuples(b) == 1;
        fprintf(stderr, "glint-worker enqueue: insufficient credits: user %s has %s credit(s), a %s job needs more (%s)\n", a->user,
                known ? PQgetvalue(b, 0, 0) : "no", a->mode, detail ? detail : "see glint_credit_cost");
        PQclear(b);
        return;
    }
    fprintf(stderr, "glint-worker enqueue: %s", PQresultErrorMessage(res));
}

static int enqueue(gw_settings_t *cfg, const gw_cli_args_t *args)
{
    gw_cli_args_t a = *args;
    if (a.user == NULL)
        a.user = NIL_USER;
    if (!gw_api_valid_uuid(a.user)) {
        fprintf(stderr, "glint-worker enqueue: --user must be a UUID, not \"%s\"\n", a.user);
        return 2;
    }
    if (check_url(cfg, "enqueue", a.positional) != 0)
        return 2;
    PGconn *c = connect_db(cfg, "enqueue");
    if (c == NULL)
        return 1;
    const char *params[] = {a.user, a.positional, a.mode, a.language, a.priority};
    /* the database validates the tag (invalid_language); NULL = the transcript's language */
    PGresult *res = PQexecParams(c, "SELECT glint_enqueue_job($1::uuid, $2, $3, p_language => $4, p_priority => $5::int)", 5, NULL,
                                 params, NULL, NULL, 0);
    int rc = 0;
    if (PQresultStatus(res) == PGRES_TUPLES_OK) {
        printf("%s\n", PQgetvalue(res, 0, 0));
    } else {
        explain_enqueue_error(c, res, &a);
        rc = 1;
    }
    PQclear(res);
    PQfinish(c);
    return rc;
}

/* ---- status ---- */

static void print_field(const char *label, json_t *v)
{
    if (json_is_string(v))
        printf("%-10s %s\n", label, json_string_value(v));
    else if (json_is_integer(v))
        printf("%-10s %lld\n", label, (long long)json_integer_value(v));
}

static void print_human(json_t *j)
{
    print_field("id", json_object_get(j, "id"));
    printf("%-10s %s (stage %s)\n", "status", json_string_value(json_object_get(j, "status")),
           json_is_string(json_object_get(j, "stage")) ? json_string_value(json_object_get(j, "stage")) : "-");
    print_field("mode", json_object_get(j, "mode"));
    print_field("language", json_object_get(j, "language"));
    print_field("video", json_object_get(j, "video_url"));
    printf("%-10s %lld/%lld\n", "attempts", (long long)json_integer_value(json_object_get(j, "attempts")),
           (long long)json_integer_value(json_object_get(j, "max_attempts")));
    print_field("credits", json_object_get(j, "credits_charged"));
    print_field("created", json_object_get(j, "created_at"));
    print_field("started", json_object_get(j, "started_at"));
    print_field("finished", json_object_get(j, "finished_at"));
    json_t *err = json_object_get(j, "error");
    if (json_is_object(err))
        printf("%-10s %s: %s\n", "error", json_string_value(json_object_get(err, "code")),
               json_string_value(json_object_get(err, "message")));
    json_t *res = json_object_get(j, "result");
    if (json_is_object(res)) {
        print_field("model", json_object_get(j, "model"));
        json_t *cost = json_object_get(json_object_get(j, "usage"), "cost_usd");
        if (json_is_number(cost)) /* GEMINI_PRICES x usageMetadata (docs/gemini-quota.md) */
            printf("%-10s $%.6f (estimated)\n", "cost", json_number_value(cost));
        print_field("title", json_object_get(res, "title"));
        print_field("summary", json_object_get(res, "summary"));
        size_t i;
        json_t *e;
        json_array_foreach(json_object_get(res, "timeline"), i, e)
        {
            printf("%-10s %s  %s\n", i == 0 ? "timeline" : "", json_string_value(json_object_get(e, "timestamp")),
                   json_string_value(json_object_get(e, "description")));
        }
    }
}

static int show_status(const char *text, bool as_json)
{
    if (as_json) {
        printf("%s\n", text);
        return 0;
    }
    json_t *j = json_loads(text, 0, NULL);
    if (j == NULL) {
        fprintf(stderr, "glint-worker status: unreadable answer from the database\n");
        return 1;
    }
    print_human(j);
    json_decref(j);
    return 0;
}

static int status(gw_settings_t *cfg, const gw_cli_args_t *a)
{
    if (!gw_api_valid_uuid(a->positional)) {
        fprintf(stderr, "glint-worker status: the job id must be a UUID, not \"%s\"\n", a->positional);
        return 2;
    }
    PGconn *c = connect_db(cfg, "status");
    if (c == NULL)
        return 1;
    const char *params[] = {a->positional};
    PGresult *res = PQexecParams(c, gw_api_job_sql, 1, NULL, params, NULL, NULL, 0);
    int rc;
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        fprintf(stderr, "glint-worker status: %s", PQresultErrorMessage(res));
        rc = 1;
    } else if (PQntuples(res) == 0) {
        fprintf(stderr, "glint-worker status: no job with id %s\n", a->positional);
        rc = 1;
    } else {
        rc = show_status(PQgetvalue(res, 0, 0), a->json);
    }
    PQclear(res);
    PQfinish(c);
    return rc;
}

/* ---- analyze: one job through the production pipeline, no database ---- */

typedef struct st_analyze_t {
    gw_app_t app;
    uv_timer_t drain; /* after the outcome: waits for stray transfers (the model check) before closing */
    uint64_t drain_until;
    int rc;
} analyze_t;

static void close_all(analyze_t *an)
{
    uv_close((uv_handle_t *)&an->drain, NULL);
    gw_fetcher_close(an->app.fetcher);
}

static void on_drain(uv_timer_t *t)
{
    analyze_t *an = t->data;
    if (gw_fetcher_active(an->app.fetcher) == 0 || uv_now(an->app.loop) >= an->drain_until) {
        uv_timer_stop(t);
        close_all(an);
    }
}

static void on_outcome(const gw_job_t *job, json_t *result, const char *code, const char *message, void *data)
{
    analyze_t *an = data;
    if (result != NULL) {
        char *s = json_dumps(result, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (s == NULL)
            abort();
        printf("%s\n", s);
        fflush(stdout);
        free(s);
        an->rc = 0;
    } else {
        fprintf(stderr, "glint-worker analyze: %s: %s\n", code ? code : "failed", message ? message : "");
        an->rc = 1;
    }
    an->drain_until = uv_now(an->app.loop) + DRAIN_MAX_MS;
    if (uv_timer_start(&an->drain, on_drain, 0, DRAIN_POLL_MS) != 0)
        abort();
}

static int analyze_run(gw_settings_t *cfg, const gw_cli_args_t *a)
{
    static analyze_t an; /* static: reached from callbacks by address */
    uv_loop_t loop;
    memset(&an, 0, sizeof(an));
    an.rc = 1;
    an.app.cfg = cfg;
    an.app.loop = &loop;
    if (uv_loop_init(&loop) != 0 || uv_timer_init(&loop, &an.drain) != 0)
        return 1;
    an.drain.data = &an;
    an.app.started_at_ms = uv_hrtime() / 1000000;
    an.app.fetcher = gw_fetcher_create(&loop, 8);
    gw_pipeline_t pipeline;
    if (gw_pipeline_init(&an.app, &pipeline) != 0)
        return 1;
    gw_queue_opts_t qo = {"analyze", 1, (unsigned)cfg->lease_seconds, (uint64_t)cfg->poll_interval_ms, NULL, 0, NULL, 0, 0};
    an.app.queue = gw_queue_create(&loop, NULL, &qo, &pipeline);
    gw_queue_run_local(an.app.queue, a->positional, strcmp(a->mode, "deep") == 0, on_outcome, &an);
    uv_run(&loop, UV_RUN_DEFAULT);
    gw_pipeline_dispose(&an.app);
    gw_queue_free(an.app.queue);
    if (uv_loop_close(&loop) != 0)
        gw_warn("analyze: loop closed with handles open");
    return an.rc;
}

static int analyze(gw_settings_t *cfg, const gw_cli_args_t *a)
{
    if (check_url(cfg, "analyze", a->positional) != 0)
        return 2;
    signal(SIGPIPE, SIG_IGN);
    return analyze_run(cfg, a);
}

/* ---- cancel: the same SQL function as POST /worker/jobs/{id}/cancel ---- */

static int cancel(gw_settings_t *cfg, const gw_cli_args_t *a)
{
    if (!gw_api_valid_uuid(a->positional)) {
        fprintf(stderr, "glint-worker cancel: the job id must be a UUID, not \"%s\"\n", a->positional);
        return 2;
    }
    PGconn *c = connect_db(cfg, "cancel");
    if (c == NULL)
        return 1;
    const char *params[] = {a->positional};
    PGresult *res = PQexecParams(c, "SELECT status, changed FROM glint_cancel_job($1::uuid)", 1, NULL, params, NULL, NULL, 0);
    int rc = 1;
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        fprintf(stderr, "glint-worker cancel: %s", PQresultErrorMessage(res));
    } else if (PQntuples(res) == 0) {
        fprintf(stderr, "glint-worker cancel: no job with id %s\n", a->positional);
    } else if (strcmp(PQgetvalue(res, 0, 1), "t") != 0) {
        fprintf(stderr, "glint-worker cancel: the job is already %s\n", PQgetvalue(res, 0, 0));
    } else {
        printf("%s CANCELLED (credits refunded)\n", a->positional);
        rc = 0;
    }
    PQclear(res);
    PQfinish(c);
    return rc;
}

/* ---- retry: the same SQL function as POST /worker/jobs/{id}/retry ---- */

static int retry(gw_settings_t *cfg, const gw_cli_args_t *a)
{
    if (!gw_api_valid_uuid(a->positional)) {
        fprintf(stderr, "glint-worker retry: the job id must be a UUID, not \"%s\"\n", a->positional);
        return 2;
    }
    PGconn *c = connect_db(cfg, "retry");
    if (c == NULL)
        return 1;
    const char *params[] = {a->positional};
    PGresult *res =
        PQexecParams(c, "SELECT status, outcome, credits FROM glint_retry_job($1::uuid)", 1, NULL, params, NULL, NULL, 0);
    int rc = 1;
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        fprintf(stderr, "glint-worker retry: %s", PQresultErrorMessage(res));
    } else if (PQntuples(res) == 0) {
        fprintf(stderr, "glint-worker retry: no job with id %s\n", a->positional);
    } else if (strcmp(PQgetvalue(res, 0, 1), "not_retryable") == 0) {
        fprintf(stderr, "glint-worker retry: the job is %s; only a FAILED or CANCELLED job can be retried\n",
                PQgetvalue(res, 0, 0));
    } else if (strcmp(PQgetvalue(res, 0, 1), "insufficient_credits") == 0) {
        fprintf(stderr, "glint-worker retry: insufficient credits: the retry costs %s credit(s); nothing was changed\n",
                PQgetvalue(res, 0, 2));
    } else {
        printf("%s PENDING (charged %s credit(s))\n", a->positional, PQgetvalue(res, 0, 2));
        rc = 0;
    }
    PQclear(res);
    PQfinish(c);
    return rc;
}

/* ---- declarations ---- */

const gw_cli_command_t gw_cli_enqueue = {
    "enqueue",
    "URL [--mode standard|deep] [--user UUID] [--language TAG] [--priority N]",
    "charge the user and enqueue a job; prints its id",
    "  --mode MODE      standard (the default; 1 credit) or deep (15 credits per started 5 minutes)\n"
    "  --deep           the same as --mode deep\n"
    "  --user UUID      the user charged (default " NIL_USER ")\n"
    "  --language TAG   write the analysis in this language (BCP-47: de, pt-BR, zh-Hant); default the transcript's\n"
    "  --priority N     claimed before every PENDING job of a lower priority (default 0; -32768 to 32767)\n\n"
    "The URL is checked as the worker will check it (ALLOWED_VIDEO_HOSTS) before anything is charged.\n",
    "URL",
    GW_CLI_OPT_MODE | GW_CLI_OPT_USER | GW_CLI_OPT_LANGUAGE | GW_CLI_OPT_PRIORITY,
    GW_SETTINGS_NEED_DB,
    enqueue,
};

const gw_cli_command_t gw_cli_status = {
    "status",
    "ID [--json]",
    "a job's status, stage, error and result",
    "  --json  the job as JSON (the body GET /worker/jobs/{id} answers)\n",
    "job id",
    GW_CLI_OPT_JSON,
    GW_SETTINGS_NEED_DB,
    status,
};

const gw_cli_command_t gw_cli_analyze = {
    "analyze",
    "URL [--mode standard|deep]",
    "run the pipeline once without a database; prints the result",
    "  --mode MODE  standard (the default) or deep\n"
    "  --deep       the same as --mode deep\n\n"
    "The same stages a claimed job runs (yt-dlp or a local file, then Gemini or the local analyzer); DATABASE_URL is not\n"
    "needed. The result JSON goes to stdout, a failure's code and message to stderr.\n",
    "URL",
    GW_CLI_OPT_MODE,
    0,
    analyze,
};

const gw_cli_command_t gw_cli_cancel = {
    "cancel",
    "ID",
    "cancel a PENDING or PROCESSING job and refund its credits",
    "The worker holding the job aborts it (NOTIFY glint_cancel). A job already finished is left as it is (exit 1).\n",
    "job id",
    0,
    GW_SETTINGS_NEED_DB,
    cancel,
};

const gw_cli_command_t gw_cli_retry = {
    "retry",
    "ID",
    "put a FAILED or CANCELLED job back to PENDING, charging its credits again",
    "Attempts are reset and the error cleared; the charge goes through the ledger (a later failure refunds it again).\n"
    "Exit 1 when the job is in another state, unknown, or the balance does not cover the charge (nothing changed).\n",
    "job id",
    0,
    GW_SETTINGS_NEED_DB,
    retry,
};
