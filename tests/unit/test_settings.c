/* The daemon's configuration table (handlers/settings.c) through the engine: defaults, what each command needs,
 * secrets, and that the table is well-formed (unique names, one row per field, documented rows). */
#include "check.h"
#include "handlers/settings.h"
#include "reactor/log.h"
#include <stdlib.h>
#include <unistd.h>

static char logged[4096];
static void sink(const char *line, void *data)
{
    snprintf(logged, sizeof(logged), "%s", line);
}

static void test_defaults(const char *path)
{
    gw_settings_t cfg;
    char err[256];
    setenv("PORT", "8123", 1);
    CHECK_INT(gw_settings_load(&cfg, path, GW_SETTINGS_NEED_DB, err, sizeof(err)), 0);
    CHECK_INT(cfg.port, 8123);
    CHECK_INT(cfg.max_concurrent_jobs, 4);
    CHECK_INT(cfg.lease_seconds, 30);
    CHECK_STR(cfg.gemini_flash_model, "gemini-3.6-flash");
    CHECK_STR(cfg.analyzer, "auto");
    CHECK_STR(cfg.log_format, "text");
    CHECK(strstr(cfg.allowed_video_hosts, "youtu.be") != NULL);
    CHECK(cfg.local_media_dir == NULL && cfg.gemini_api_key == NULL);
    gw_settings_free(&cfg);
    unsetenv("PORT");
    setenv("MAX_CONCURRENT_JOBS", "0", 1);
    CHECK_INT(gw_settings_load(&cfg, path, GW_SETTINGS_NEED_DB, err, sizeof(err)), -1);
    CHECK(strstr(err, "MAX_CONCURRENT_JOBS") != NULL);
    gw_settings_free(&cfg);
    unsetenv("MAX_CONCURRENT_JOBS");
    setenv("LOG_FORMAT", "xml", 1);
    CHECK_INT(gw_settings_load(&cfg, path, GW_SETTINGS_NEED_DB, err, sizeof(err)), -1);
    CHECK(strstr(err, "LOG_FORMAT") != NULL);
    gw_settings_free(&cfg);
    unsetenv("LOG_FORMAT");
}

/* DATABASE_URL is required by the commands that open the database, not by analyze. */
static void test_need(void)
{
    gw_settings_t cfg;
    char err[256];
    CHECK_INT(gw_settings_load(&cfg, "/nonexistent/.env", GW_SETTINGS_NEED_DB, err, sizeof(err)), -1);
    CHECK(strstr(err, "DATABASE_URL") != NULL);
    gw_settings_free(&cfg);
    CHECK_INT(gw_settings_load(&cfg, "/nonexistent/.env", 0, err, sizeof(err)), 0);
    CHECK(cfg.database_url == NULL);
    gw_settings_free(&cfg);
}

static void test_secrets(const char *path)
{
    gw_settings_t cfg;
    char err[256];
    setenv("GEMINI_API_KEY", "AIzaSecretValue123", 1);
    setenv("WORKER_API_KEY", "worker-key-4567", 1);
    CHECK_INT(gw_settings_load(&cfg, path, GW_SETTINGS_NEED_DB, err, sizeof(err)), 0);
    gw_log_set_sink(sink, NULL);
    gw_info("key %s url %s worker %s", cfg.gemini_api_key, cfg.database_url, cfg.worker_api_key);
    CHECK(strstr(logged, "AIzaSecretValue123") == NULL);
    CHECK(strstr(logged, "s3cretpw") == NULL);
    CHECK(strstr(logged, "worker-key-4567") == NULL);
    gw_settings_free(&cfg);
    gw_log_dispose();
    unsetenv("GEMINI_API_KEY");
    unsetenv("WORKER_API_KEY");
}

/* Every field of gw_settings_t is filled by exactly one row (a field without a row would stay zero), names are unique
 * environment names, and every row is documented. */
static void test_table(void)
{
    const gw_config_table_t *t = &gw_settings_table;
    CHECK(t->nvars > 30);
    CHECK_INT(t->nvars * sizeof(void *), sizeof(gw_settings_t)); /* char * and long fields only */
    int dup = 0, bad = 0;
    for (size_t i = 0; i < t->nvars; i++) {
        const gw_config_var_t *v = &t->vars[i];
        bad += v->help == NULL || *v->help == '\0' || strspn(v->name, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") != strlen(v->name);
        bad += v->offset % sizeof(void *) != 0 || v->offset >= sizeof(gw_settings_t);
        bad += v->type == GW_CFG_ENUM && (v->choices == NULL || v->def == NULL);
        for (size_t j = 0; j < i; j++)
            dup += strcmp(v->name, t->vars[j].name) == 0 || v->offset == t->vars[j].offset;
    }
    CHECK_INT(dup, 0);
    CHECK_INT(bad, 0);
}

/* The documentation's table: one row per variable, three cells each. */
static void test_markdown(void)
{
    char *md = NULL;
    size_t mdlen = 0;
    FILE *mf = open_memstream(&md, &mdlen);
    gw_settings_print_markdown(mf);
    fclose(mf);
    CHECK(strstr(md, "debug\\|info") != NULL && strstr(md, "| `DATABASE_URL` | required |") != NULL);
    int rows = 0, bad = 0;
    for (char *line = strtok(md, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        int cells = 0;
        for (char *c = line; *c; c++)
            cells += *c == '|' && (c == line || c[-1] != '\\');
        rows++;
        bad += cells != 4;
    }
    CHECK_INT(rows, 2 + (int)gw_settings_table.nvars);
    CHECK_INT(bad, 0);
    free(md);
}

int main(void)
{
    char path[] = "/tmp/glint-test-settings-XXXXXX";
    int fd = mkstemp(path);
    FILE *f = fdopen(fd, "w");
    fprintf(f, "DATABASE_URL=postgresql://u:s3cretpw@db/x\nPORT=9000\nMAX_CONCURRENT_JOBS=4\n");
    fclose(f);
    test_defaults(path);
    test_need();
    test_secrets(path);
    unlink(path);
    test_table();
    test_markdown();
    return check_report();
}
