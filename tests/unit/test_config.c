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

int main(void)
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

    /* the real environment wins over .env; bounds and choices are enforced with one line naming the variable */
    char path[] = "/tmp/glint-test-env-XXXXXX";
    int fd = mkstemp(path);
    FILE *f = fdopen(fd, "w");
    fprintf(f, "DATABASE_URL=postgresql://u:s3cretpw@db/x\nPORT=9000\nMAX_CONCURRENT_JOBS=4\n");
    fclose(f);
    gw_config_t cfg;
    char err[256];
    setenv("PORT", "8123", 1);
    CHECK_INT(gw_config_load(&cfg, path, true, err, sizeof(err)), 0);
    CHECK_INT(cfg.port, 8123);
    CHECK_INT(cfg.max_concurrent_jobs, 4);
    CHECK_INT(cfg.lease_seconds, 30);
    CHECK_STR(cfg.gemini_flash_model, "gemini-3.6-flash");
    gw_config_free(&cfg);

    setenv("MAX_CONCURRENT_JOBS", "0", 1);
    CHECK_INT(gw_config_load(&cfg, path, true, err, sizeof(err)), -1);
    CHECK(strstr(err, "MAX_CONCURRENT_JOBS") != NULL);
    gw_config_free(&cfg);
    setenv("MAX_CONCURRENT_JOBS", "12abc", 1);
    CHECK_INT(gw_config_load(&cfg, path, true, err, sizeof(err)), -1);
    gw_config_free(&cfg);
    unsetenv("MAX_CONCURRENT_JOBS");
    setenv("LOG_FORMAT", "xml", 1);
    CHECK_INT(gw_config_load(&cfg, path, true, err, sizeof(err)), -1);
    CHECK(strstr(err, "LOG_FORMAT") != NULL);
    gw_config_free(&cfg);
    unsetenv("LOG_FORMAT");

    /* DATABASE_URL is required for serve/migrate */
    CHECK_INT(gw_config_load(&cfg, "/nonexistent/.env", true, err, sizeof(err)), -1);
    CHECK(strstr(err, "DATABASE_URL") != NULL);
    gw_config_free(&cfg);

    /* secrets registered for redaction: API keys and the password inside DATABASE_URL */
    setenv("GEMINI_API_KEY", "AIzaSecretValue123", 1);
    CHECK_INT(gw_config_load(&cfg, path, true, err, sizeof(err)), 0);
    gw_log_set_sink(sink, NULL);
    gw_info("key %s url %s", cfg.gemini_api_key, cfg.database_url);
    CHECK(strstr(logged, "AIzaSecretValue123") == NULL);
    CHECK(strstr(logged, "s3cretpw") == NULL);
    gw_config_free(&cfg);
    gw_log_dispose();
    unlink(path);
    /* the README's table: every row has exactly three cells, so enum choices' '|' are escaped */
    char *md = NULL;
    size_t mdlen = 0;
    FILE *mf = open_memstream(&md, &mdlen);
    gw_config_print_markdown(mf);
    fclose(mf);
    CHECK(strstr(md, "debug\\|info") != NULL);
    int rows = 0, bad = 0;
    for (char *line = strtok(md, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        int cells = 0;
        for (char *c = line; *c; c++)
            cells += *c == '|' && (c == line || c[-1] != '\\');
        rows++;
        bad += cells != 4;
    }
    CHECK(rows > 30);
    CHECK_INT(bad, 0);
    free(md);
    return check_report();
}
