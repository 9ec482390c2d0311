/* glint-worker: turns analysis_jobs rows into analyses. One thread, one libuv loop. */
#include "handlers/api.h"
#include "handlers/app.h"
#include "handlers/cli.h"
#include "handlers/errors.h"
#include "handlers/job.h"
#include "handlers/local_analyzer.h"
#include "handlers/metrics.h"
#include "handlers/migrate.h"
#include "handlers/modelcheck.h"
#include "handlers/settings.h"
#include "reactor/log.h"
#include "gw_build.h"
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define TICK_MS 250
#define RELEASE_WAIT_MS 2000 /* after releasing jobs at the end of the grace period */

typedef struct st_daemon_t {
    gw_app_t app;
    uv_timer_t tick;
    uv_signal_t sigterm, sigint;
    uint64_t grace_deadline, hard_deadline;
    bool released, finished;
    char worker_id[128];
} daemon_t;

static void make_worker_id(daemon_t *d)
{
    if (d->app.cfg->worker_id != NULL && *d->app.cfg->worker_id) {
        snprintf(d->worker_id, sizeof(d->worker_id), "%s", d->app.cfg->worker_id);
        return;
    }
    char host[64] = "host";
    gethostname(host, sizeof(host) - 1);
    host[sizeof(host) - 1] = '\0';
    snprintf(d->worker_id, sizeof(d->worker_id), "%s:%d:%04x", host, (int)getpid(), rand() & 0xffff);
}

static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* ---- pg events ---- */

static void on_pg_connect(void *data)
{
    daemon_t *d = data;
    static bool first = true;
    if (first) {
        first = false;
        gw_log_event(GW_LOG_INFO, NULL, NULL, (double)(uv_hrtime() / 1000000 - d->app.started_at_ms),
                     "ready: worker %s, LISTEN active", d->worker_id);
    }
    gw_queue_on_connect(d->app.queue);
}

static void on_pg_notify(const char *channel, const char *payload, void *data)
{
    daemon_t *d = data;
    gw_queue_on_notify(d->app.queue, channel, payload);
}

/* ---- shutdown, staged: stop claiming, let jobs finish within the grace period, release the rest, close ---- */

static void close_handles(daemon_t *d)
{
    d->finished = true;
    gw_server_stop(d->app.server);
    gw_log_set_error_hook(NULL, NULL);
    gw_sentry_free(d->app.sentry); /* before the fetcher: it cancels its own transfers */
    d->app.sentry = NULL;
    gw_modelcheck_stop(d->app.modelcheck);
    d->app.modelcheck = NULL;
    uv_close((uv_handle_t *)&d->tick, NULL);
    uv_close((uv_handle_t *)&d->sigterm, NULL);
    uv_close((uv_handle_t *)&d->sigint, NULL);
    gw_pg_close(d->app.pg);
    gw_fetcher_close(d->app.fetcher);
    uv_stop(d->app.loop); /* h2o's context is disposed after uv_run returns */
}

static void shutdown_step(daemon_t *d)
{
    uint64_t now = uv_now(d->app.loop);
    size_t active = gw_queue_active(d->app.queue), writes = gw_queue_writes_inflight(d->app.queue);
    if (active == 0 && writes == 0 && gw_pg_pending(d->app.pg) == 0 && gw_sentry_pending(d->app.sentry) == 0) {
        gw_info("shutdown: all jobs settled");
        close_handles(d);
    } else if (!d->released && now >= d->grace_deadline) {
        gw_info("shutdown: grace period over, releasing %zu job(s)", active);
        d->released = true;
        d->hard_deadline = now + RELEASE_WAIT_MS;
        gw_queue_release_all(d->app.queue);
    } else if (d->released && now >= d->hard_deadline) {
        gw_warn("shutdown: %zu job(s) and %zu write(s) unsettled; their leases will expire", active, writes);
        close_handles(d);
    }
}

static void on_tick(uv_timer_t *t)
{
    daemon_t *d = (daemon_t *)((char *)t - offsetof(daemon_t, tick));
    gw_pg_tick(d->app.pg);
    gw_queue_tick(d->app.queue);
    gw_run_pools_tick();
    if (d->app.draining && !d->finished)
        shutdown_step(d);
}

static void on_signal(uv_signal_t *s, int signum)
{
    daemon_t *d = s->data;
    if (d->app.draining) {
        gw_warn("second signal: exiting now");
        _exit(1);
    }
    gw_info("signal %d: draining (grace %ld ms)", signum, d->app.cfg->shutdown_grace_ms);
    d->app.draining = true;
    d->grace_deadline = uv_now(d->app.loop) + (uint64_t)d->app.cfg->shutdown_grace_ms;
    gw_queue_stop_claiming(d->app.queue);
    shutdown_step(d);
}

/* ERROR log lines (unexpected states: failed writes, crashes of a stage) become Sentry events. */
static void on_error_log(const char *job_id, const char *message, void *data)
{
    daemon_t *d = data;
    const char *tags[] = {"job_id", job_id, "release", GW_VERSION, "commit", GW_BUILD_COMMIT, "worker_id", d->worker_id, NULL};
    gw_sentry_capture(d->app.sentry, "error", message, tags, NULL);
}

static int start_sentry(daemon_t *d)
{
    gw_app_t *app = &d->app;
    if (app->cfg->sentry_dsn == NULL || *app->cfg->sentry_dsn == '\0')
        return 0;
    char err[256], release[128];
    snprintf(release, sizeof(release), "glint-worker@%s+%s", GW_VERSION, GW_BUILD_COMMIT);
    gw_sentry_opts_t so = {release, app->cfg->sentry_environment, d->worker_id, 64, 2};
    if ((app->sentry = gw_sentry_create(app->fetcher, app->cfg->sentry_dsn, &so, err, sizeof(err))) == NULL) {
        gw_error("%s", err);
        return -1;
    }
    gw_log_set_error_hook(on_error_log, d);
    gw_sentry_send_crash_reports(app->sentry, app->cfg->work_dir);
    gw_sentry_install_crash_handler(app->sentry, app->cfg->work_dir);
    gw_info("sentry: reporting failed jobs and errors");
    return 0;
}

/* A failed model check is the operator's trouble: claim nothing until it passes (jobs wait PENDING). */
static void on_modelcheck(gw_modelcheck_state_t state, void *data)
{
    daemon_t *d = data;
    gw_queue_pause_claiming(d->app.queue, gw_modelcheck_blocks(d->app.modelcheck));
}

static void start_modelcheck(daemon_t *d)
{
    gw_config_t *cfg = d->app.cfg;
    if (gw_analyzer_is_local(cfg->analyzer, cfg->gemini_api_key))
        return; /* no model needed */
    gw_modelcheck_opts_t mo = {cfg->gemini_base_url,
                               cfg->gemini_api_key,
                               {cfg->gemini_flash_model, cfg->gemini_pro_model, NULL},
                               {"GEMINI_FLASH_MODEL", "GEMINI_PRO_MODEL", NULL},
                               (uint64_t)cfg->model_check_interval_ms,
                               (uint64_t)cfg->model_check_retry_ms,
                               10000,
                               on_modelcheck,
                               d};
    gw_queue_pause_claiming(d->app.queue, true); /* until the first verdict */
    d->app.modelcheck = gw_modelcheck_start(d->app.loop, d->app.fetcher, &mo);
}

/* The cap on HTTP connections leaves descriptors for the pipeline: pipes, curl sockets, files, PostgreSQL. */
static size_t http_connection_cap(const gw_config_t *cfg)
{
    struct rlimit rl;
    size_t cap = (size_t)cfg->http_max_connections;
    size_t reserve = 128 + 32 * (size_t)cfg->max_concurrent_jobs;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
        size_t room = rl.rlim_cur > reserve + 8 ? (size_t)rl.rlim_cur - reserve : 8;
        if (room < cap) {
            gw_warn("HTTP_MAX_CONNECTIONS lowered from %zu to %zu: RLIMIT_NOFILE is %llu and %zu descriptors are kept for jobs",
                    cap, room, (unsigned long long)rl.rlim_cur, reserve);
            cap = room;
        }
    }
    return cap;
}

static int start_sources(daemon_t *d)
{
    gw_app_t *app = &d->app;
    static const char *const channels[] = {"glint_jobs", "glint_cancel", NULL};
    gw_pg_events_t ev = {on_pg_connect, NULL, on_pg_notify, d};
    app->pg = gw_pg_create(app->loop, app->cfg->database_url, channels, &ev, (uint64_t)app->cfg->pg_query_timeout_ms);
    app->fetcher = gw_fetcher_create(app->loop, 64);
    if (start_sentry(d) != 0)
        return -1;
    gw_pipeline_t pipeline;
    if (gw_pipeline_init(app, &pipeline) != 0)
        return -1;
    gw_queue_opts_t qo = {d->worker_id,
                          (unsigned)app->cfg->max_concurrent_jobs,
                          (unsigned)app->cfg->lease_seconds,
                          (uint64_t)app->cfg->poll_interval_ms,
                          app->sentry,
                          (unsigned)app->cfg->max_concurrent_deep_jobs,
                          app->cfg->work_dir,
                          (uint64_t)app->cfg->download_max_bytes,
                          (unsigned)app->cfg->job_retention_days};
    app->queue = gw_queue_create(app->loop, app->pg, &qo, &pipeline);
    start_modelcheck(d);
    gw_server_opts_t so = {app->cfg->host, (int)app->cfg->port, 64 * 1024, 10000, http_connection_cap(app->cfg)};
    if ((app->server = gw_server_create(app->loop, &so)) == NULL)
        return -1;
    gw_api_register(app);
    if (uv_timer_init(app->loop, &d->tick) != 0 || uv_timer_start(&d->tick, on_tick, TICK_MS, TICK_MS) != 0)
        return -1;
    uv_signal_init(app->loop, &d->sigterm);
    uv_signal_init(app->loop, &d->sigint);
    d->sigterm.data = d->sigint.data = d;
    if (uv_signal_start(&d->sigterm, on_signal, SIGTERM) != 0 || uv_signal_start(&d->sigint, on_signal, SIGINT) != 0)
        return -1;
    gw_info("listening on %s:%d", app->cfg->host, gw_server_port(app->server));
    return gw_pg_start(app->pg);
}

static int serve(gw_settings_t *cfg, const gw_cli_args_t *args)
{
    static daemon_t d; /* static: signal and timer callbacks reach it by address */
    uv_loop_t loop;
    memset(&d, 0, sizeof(d));
    d.app.cfg = cfg;
    d.app.loop = &loop;
    d.app.started_at_ms = uv_hrtime() / 1000000;
    signal(SIGPIPE, SIG_IGN);
    raise_nofile();
    make_worker_id(&d);
    if (uv_loop_init(&loop) != 0)
        return 1;
    if (start_sources(&d) != 0) {
        fprintf(stderr, "glint-worker: cannot start (see log)\n");
        return 1;
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    gw_server_dispose(d.app.server); /* runs uv_run itself */
    uv_run(&loop, UV_RUN_DEFAULT);   /* remaining close callbacks */
    gw_pipeline_dispose(&d.app);
    gw_queue_free(d.app.queue);
    int rc = uv_loop_close(&loop);
    if (rc != 0)
        gw_warn("loop closed with handles open: %s", uv_strerror(rc));
    gw_info("stopped");
    return rc == 0 ? 0 : 1;
}

static int migrate(gw_settings_t *cfg, const gw_cli_args_t *args)
{
    char err[512];
    int applied;
    if (gw_migrate(cfg->database_url, &applied, err, sizeof(err)) != 0) {
        fprintf(stderr, "glint-worker: migrate: %s\n", err);
        return 1;
    }
    gw_info("migrate: %d migration(s) applied, schema up to date", applied);
    return 0;
}

static const gw_cli_command_t serve_command = {
    "serve",
    "",
    "run the daemon (the default command)",
    "Claims jobs from PostgreSQL (LISTEN glint_jobs and a fallback poll), runs them, and serves /health, /metrics and\n"
    "/worker/* on HOST:PORT. SIGTERM or SIGINT: stop claiming, let running jobs finish for SHUTDOWN_GRACE_MS, release\n"
    "the rest, exit 0.\n",
    NULL,
    0,
    GW_SETTINGS_NEED_DB,
    serve,
};

static const gw_cli_command_t migrate_command = {
    "migrate",
    "",
    "apply pending sql/ migrations and exit",
    "The migrations are compiled into the binary; applying them again is a no-op. Run it as the schema owner.\n",
    NULL,
    0,
    GW_SETTINGS_NEED_DB,
    migrate,
};

static const gw_cli_command_t *const commands[] = {&serve_command,  &migrate_command, &gw_cli_enqueue, &gw_cli_status,
                                                   &gw_cli_analyze, &gw_cli_cancel,   &gw_cli_retry,   NULL};

/* The overview: one line per command (the summary on the next line when the synopsis is long), then the configuration. */
static void usage(FILE *out)
{
    for (size_t i = 0; commands[i] != NULL; i++) {
        const gw_cli_command_t *c = commands[i];
        char line[128];
        snprintf(line, sizeof(line), "glint-worker %s%s%s", c == &serve_command ? "[serve]" : c->name, *c->synopsis ? " " : "",
                 c->synopsis);
        const char *lead = i == 0 ? "usage: " : "       ";
        if (strlen(line) < 38)
            fprintf(out, "%s%-38s%s\n", lead, line, c->summary);
        else
            fprintf(out, "%s%s\n%45s%s\n", lead, line, "", c->summary);
    }
    fprintf(out, "       %-38s%s\n", "glint-worker COMMAND --help", "a command's arguments and options");
    fprintf(out, "       glint-worker --version | --help | --config-markdown | --errors-markdown\n\n");
    gw_settings_print_help(out);
}

static const gw_cli_command_t *find_command(const char *name)
{
    for (size_t i = 0; commands[i] != NULL; i++)
        if (strcmp(commands[i]->name, name) == 0)
            return commands[i];
    return NULL;
}

static void print_version(FILE *out)
{
    fprintf(out, "glint-worker %s (commit %s)\n", GW_VERSION, GW_COMMIT);
}

/* Options of the program itself; they take no arguments. */
static const struct {
    const char *name;
    void (*print)(FILE *out);
} global_options[] = {
    {"--help", usage},
    {"-h", usage},
    {"--version", print_version},
    {"--config-markdown", gw_settings_print_markdown}, /* the documentation's configuration table */
    {"--errors-markdown", gw_errors_print_markdown},   /* docs/errors.md */
};

/* 0 or 2 when argv[1] is a program option (printed, or refused), -1 when it is not one. */
static int global_option(int argc, char **argv)
{
    for (size_t i = 0; i < sizeof(global_options) / sizeof(global_options[0]); i++) {
        if (strcmp(argv[1], global_options[i].name) != 0)
            continue;
        if (argc > 2) {
            fprintf(stderr, "glint-worker: %s takes no arguments (try --help)\n", argv[1]);
            return 2;
        }
        global_options[i].print(stdout);
        return 0;
    }
    return -1;
}

static int run_command(const gw_cli_command_t *cmd, const gw_cli_args_t *args)
{
    gw_settings_t cfg;
    char err[512];
    int rc;
    if (gw_settings_load(&cfg, ".env", cmd->need, err, sizeof(err)) != 0) {
        fprintf(stderr, "glint-worker: %s\n", err);
        rc = 2;
    } else {
        gw_log_init((gw_log_level_t)gw_log_parse_level(cfg.log_level), strcmp(cfg.log_format, "json") == 0);
        rc = cmd->run(&cfg, args);
    }
    gw_settings_free(&cfg);
    gw_log_dispose();
    return rc;
}

int main(int argc, char **argv)
{
    int rc = argc > 1 ? global_option(argc, argv) : -1;
    if (rc >= 0)
        return rc;
    const char *name = argc > 1 ? argv[1] : "serve";
    const gw_cli_command_t *cmd = find_command(name);
    if (cmd == NULL) {
        fprintf(stderr, "glint-worker: unknown command \"%s\" (try --help)\n", name);
        return 2;
    }
    gw_cli_args_t args;
    int parsed = argc > 1 ? gw_cli_parse(cmd, argc - 1, argv + 1, &args) : gw_cli_parse(cmd, 1, argv, &args);
    if (parsed != 0)
        return parsed > 0 ? 0 : 2;
    srand((unsigned)time(NULL) ^ (unsigned)getpid());
    return run_command(cmd, &args);
}
