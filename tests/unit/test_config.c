/* The configuration engine with a table of its own: it must work for any caller's struct and rows. The daemon's
 * table is tested in test_settings.c. */
#include "check.h"
#include "reactor/config.h"
#include "reactor/log.h"
#include <stdlib.h>
#include <unistd.h>

static char seen[16][2][64];
static int nseen;

static void collect(const char *k, const char *v, void *data)
{
    if (nseen < 16) {
        snprintf(seen[nseen][0], 64, "%s", k);
        snprintf(seen[nseen][1], 64, "%s", v);
        nseen++;
    }
}

static char logged[4096];
static void sink(const char *line, void *data)
{
    snprintf(logged, sizeof(logged), "%s", line);
}

typedef struct st_test_cfg_t {
    char *url;
    long port;
    long jobs;
    char *format;
    char *token;
    char *label;
    char *dir;
    long untouched; /* not in the table: the engine leaves it alone */
} test_cfg_t;

static int absolute_path(const char *value, char *err, size_t errlen)
{
    if (value[0] == '/')
        return 0;
    snprintf(err, errlen, "must be an absolute path, not \"%s\"", value);
    return -1;
}

#define NEED_URL 0x1u
static const gw_config_var_t vars[] = {
    {.name = "T_URL",
     .type = GW_CFG_STRING,
     .required = NEED_URL,
     .secret = GW_CFG_SECRET_URL,
     .offset = offsetof(test_cfg_t, url),
     .help = "a connection string"},
    {.name = "T_PORT", .type = GW_CFG_LONG, .def = "8000", .max = 65535, .offset = offsetof(test_cfg_t, port), .help = "a port"},
    {.name = "T_JOBS", .type = GW_CFG_LONG, .def = "8", .min = 1, .max = 64, .offset = offsetof(test_cfg_t, jobs), .help = "jobs"},
    {.name = "T_FORMAT",
     .type = GW_CFG_ENUM,
     .def = "text",
     .choices = "text|json",
     .offset = offsetof(test_cfg_t, format),
     .help = "text or json"},
    {.name = "T_TOKEN", .type = GW_CFG_STRING, .secret = GW_CFG_SECRET, .offset = offsetof(test_cfg_t, token), .help = "a key"},
    {.name = "T_LABEL", .type = GW_CFG_STRING, .def = "x", .offset = offsetof(test_cfg_t, label), .help = "a | in help"},
    {.name = "T_DIR",
     .type = GW_CFG_STRING,
     .def = "/tmp",
     .offset = offsetof(test_cfg_t, dir),
     .help = "a directory",
     .check = absolute_path},
};
static const gw_config_table_t table = {vars, sizeof(vars) / sizeof(vars[0])};

static void test_dotenv(void)
{
    const char env[] = "# comment\n"
                       "A=1\n"
                       "export B = two words  # trailing comment\n"
                       "C=\"quoted # not a comment\\nnext\"\n"
                       "D='single $NOEXPAND'\r\n"
                       "\n"
                       "E=\n"
                       "bad line\n"
                       "9X=1\n"
                       "F=\"unterminated\n";
    int rejected = gw_dotenv_parse(env, sizeof(env) - 1, collect, NULL);
    CHECK_INT(rejected, 3);
    CHECK_INT(nseen, 5);
    CHECK_STR(seen[0][0], "A");
    CHECK_STR(seen[0][1], "1");
    CHECK_STR(seen[1][0], "B");
    CHECK_STR(seen[1][1], "two words");
    CHECK_STR(seen[2][1], "quoted # not a comment\nnext");
    CHECK_STR(seen[3][1], "single $NOEXPAND");
    CHECK_STR(seen[4][0], "E");
    CHECK_STR(seen[4][1], "");
}

/* The real environment wins over .env; bounds, integers and choices are enforced with one line naming the variable. */
static void test_load(const char *path)
{
    test_cfg_t cfg;
    char err[256];
    cfg.untouched = 42;
    setenv("T_PORT", "8123", 1);
    CHECK_INT(gw_config_load(&table, &cfg, path, NEED_URL, err, sizeof(err)), 0);
    CHECK_INT(cfg.port, 8123);
    CHECK_INT(cfg.jobs, 4);
    CHECK_STR(cfg.format, "text");
    CHECK_STR(cfg.label, "x");
    CHECK(cfg.token == NULL);
    CHECK_INT(cfg.untouched, 42);
    gw_config_free(&table, &cfg);
    CHECK(cfg.url == NULL && cfg.format == NULL);

    setenv("T_JOBS", "0", 1);
    CHECK_INT(gw_config_load(&table, &cfg, path, NEED_URL, err, sizeof(err)), -1);
    CHECK(strstr(err, "T_JOBS") != NULL && strstr(err, "1 to 64") != NULL);
    gw_config_free(&table, &cfg);
    setenv("T_JOBS", "12abc", 1);
    CHECK_INT(gw_config_load(&table, &cfg, path, NEED_URL, err, sizeof(err)), -1);
    CHECK(strstr(err, "T_JOBS") != NULL);
    gw_config_free(&table, &cfg);
    setenv("T_JOBS", "", 1); /* VAR= means the default for numbers */
    CHECK_INT(gw_config_load(&table, &cfg, path, NEED_URL, err, sizeof(err)), 0);
    CHECK_INT(cfg.jobs, 8);
    gw_config_free(&table, &cfg);
    unsetenv("T_JOBS");
    setenv("T_FORMAT", "xml", 1);
    CHECK_INT(gw_config_load(&table, &cfg, path, NEED_URL, err, sizeof(err)), -1);
    CHECK(strstr(err, "T_FORMAT") != NULL && strstr(err, "text|json") != NULL);
    gw_config_free(&table, &cfg);
    setenv("T_FORMAT", "JSON", 1); /* choices are case-insensitive and stored as the table spells them */
    CHECK_INT(gw_config_load(&table, &cfg, path, NEED_URL, err, sizeof(err)), 0);
    CHECK_STR(cfg.format, "json");
    gw_config_free(&table, &cfg);
    unsetenv("T_FORMAT");
    setenv("T_DIR", "relative/dir", 1); /* a row's own check, with the variable named */
    CHECK_INT(gw_config_load(&table, &cfg, path, NEED_URL, err, sizeof(err)), -1);
    CHECK_STR(err, "T_DIR: must be an absolute path, not \"relative/dir\"");
    gw_config_free(&table, &cfg);
    setenv("T_DIR", "/var/tmp", 1);
    CHECK_INT(gw_config_load(&table, &cfg, path, NEED_URL, err, sizeof(err)), 0);
    CHECK_STR(cfg.dir, "/var/tmp");
    gw_config_free(&table, &cfg);
    unsetenv("T_DIR");
    unsetenv("T_PORT");
}

/* `required` applies only to the commands whose need names it. */
static void test_required(void)
{
    test_cfg_t cfg;
    char err[256];
    CHECK_INT(gw_config_load(&table, &cfg, "/nonexistent/.env", NEED_URL, err, sizeof(err)), -1);
    CHECK(strstr(err, "T_URL") != NULL && strstr(err, "required") != NULL);
    gw_config_free(&table, &cfg);
    CHECK_INT(gw_config_load(&table, &cfg, "/nonexistent/.env", 0, err, sizeof(err)), 0);
    CHECK(cfg.url == NULL);
    gw_config_free(&table, &cfg);
}

/* Secrets are registered for redaction: whole values, and the password inside a connection string. */
static void test_secrets(const char *path)
{
    test_cfg_t cfg;
    char err[256];
    setenv("T_TOKEN", "AIzaSecretValue123", 1);
    CHECK_INT(gw_config_load(&table, &cfg, path, NEED_URL, err, sizeof(err)), 0);
    gw_log_set_sink(sink, NULL);
    gw_info("key %s url %s pw %s", cfg.token, cfg.url, "s3cretpw");
    CHECK(strstr(logged, "AIzaSecretValue123") == NULL);
    CHECK(strstr(logged, "s3cretpw") == NULL);
    CHECK(strstr(logged, "[REDACTED]") != NULL);
    gw_config_free(&table, &cfg);
    gw_log_dispose();
    unsetenv("T_TOKEN");
}

/* --help and the markdown table come from the rows: every row has exactly three cells, '|' escaped. */
static void test_print(void)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    gw_config_print_help(&table, f);
    fclose(f);
    CHECK(strstr(text, "T_JOBS") != NULL && strstr(text, "8 (1..64)") != NULL && strstr(text, "text (text|json)") != NULL);
    CHECK(strstr(text, "default: required") != NULL && strstr(text, "default: unset") != NULL);
    free(text);
    f = open_memstream(&text, &len);
    gw_config_print_markdown(&table, f);
    fclose(f);
    CHECK(strstr(text, "text\\|json") != NULL && strstr(text, "a \\| in help") != NULL);
    int rows = 0, bad = 0;
    for (char *line = strtok(text, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        int cells = 0;
        for (char *c = line; *c; c++)
            cells += *c == '|' && (c == line || c[-1] != '\\');
        rows++;
        bad += cells != 4;
    }
    CHECK_INT(rows, 2 + (int)table.nvars);
    CHECK_INT(bad, 0);
    free(text);
}

int main(void)
{
    test_dotenv();
    char path[] = "/tmp/glint-test-env-XXXXXX";
    int fd = mkstemp(path);
    FILE *f = fdopen(fd, "w");
    fprintf(f, "T_URL=postgresql://u:s3cretpw@db/x\nT_PORT=9000\nT_JOBS=4\n");
    fclose(f);
    test_load(path);
    test_required();
    test_secrets(path);
    unlink(path);
    test_print();
    return check_report();
}
