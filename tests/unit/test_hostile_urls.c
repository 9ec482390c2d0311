/* The hostile video_url corpus (tests/hostile/video_urls.tsv) against the normaliser: every row's exact outcome. */
#include "check.h"
#include "handlers/url.h"
#include <limits.h>
#include <stdlib.h>

typedef struct st_url_case_t {
    char *expected, *allowed;
    char *input;
    size_t len;
} url_case_t;

static int hexv(int c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* Decodes the corpus escapes (see the file's header) into a malloc'd buffer; -1 on a malformed escape. */
static int unescape(const char *s, char **out, size_t *len)
{
    size_t cap = strlen(s) + 1, n = 0;
    char *b = malloc(cap);
    for (; *s != '\0'; s++) {
        char c = *s;
        if (c == '\\') {
            s++;
            if (*s == 'x' && hexv((unsigned char)s[1]) >= 0 && hexv((unsigned char)s[2]) >= 0) {
                c = (char)(hexv((unsigned char)s[1]) << 4 | hexv((unsigned char)s[2]));
                s += 2;
            } else if (*s == 't' || *s == '\\') {
                c = *s == 't' ? '\t' : '\\';
            } else if (*s == '*' && n > 0) {
                char *end;
                size_t total = strtoul(s + 1, &end, 10);
                if (*end != ';' || total < n)
                    goto bad;
                b = realloc(b, cap = total + strlen(end) + 1);
                memset(b + n, b[n - 1], total - n);
                n = total;
                s = end;
                continue;
            } else {
                goto bad;
            }
        }
        if (n + 1 >= cap)
            b = realloc(b, cap *= 2);
        b[n++] = c;
    }
    b[n] = '\0';
    *out = b;
    *len = n;
    return 0;
bad:
    free(b);
    return -1;
}

static void run_case(const url_case_t *c, int line)
{
    char id[GW_URL_ID_LEN + 1], *canon = NULL;
    const char *code = NULL, *msg = NULL;
    const char *allowed = strcmp(c->allowed, "-") == 0 ? NULL : c->allowed;
    int rc = gw_url_normalize_n(c->input, c->len, allowed, id, &canon, &code, &msg);
    bool want_ok = strstr(c->expected, "://") != NULL;
    const char *got = rc == 0 ? canon : code;
    if (got == NULL || strcmp(got, c->expected) != 0 || (rc == 0) != want_ok || (rc != 0 && (msg == NULL || canon != NULL))) {
        gw_check_failed++;
        fprintf(stderr, "video_urls.tsv:%d: got %s (%s), expected %s\n", line, got ? got : "(null)", msg ? msg : "", c->expected);
    } else {
        gw_check_passed++;
    }
    free(canon);
}

int main(void)
{
    char path[PATH_MAX], line[4096];
    const char *src = getenv("GW_TEST_SRC");
    snprintf(path, sizeof(path), "%s/hostile/video_urls.tsv", src != NULL ? src : "tests");
    FILE *f = fopen(path, "r");
    CHECK(f != NULL);
    if (f == NULL)
        return check_report();
    int lineno = 0, cases = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        lineno++;
        line[strcspn(line, "\n")] = '\0';
        if (line[0] == '#' || line[0] == '\0')
            continue;
        char *t1 = strchr(line, '\t'), *t2 = t1 != NULL ? strchr(t1 + 1, '\t') : NULL;
        url_case_t c = {line, t1 + 1, NULL, 0};
        if (t2 == NULL) {
            CHECK(!"row without three columns");
            continue;
        }
        *t1 = *t2 = '\0';
        if (unescape(t2 + 1, &c.input, &c.len) != 0) {
            fprintf(stderr, "video_urls.tsv:%d: bad escape\n", lineno);
            CHECK(!"bad escape");
            continue;
        }
        run_case(&c, lineno);
        free(c.input);
        cases++;
    }
    fclose(f);
    CHECK(cases > 140);
    printf("%d corpus rows\n", cases);
    return check_report();
}
