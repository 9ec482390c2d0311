#include "reactor/config.h"
#include "reactor/log.h"
#include "reactor/text.h"
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef struct st_dotenv_t {
    char **keys, **values;
    size_t n;
} dotenv_t;

/* Parses one value starting at p (quotes handled); returns a malloc'd string or NULL when malformed. */
static char *parse_value(const char *p, const char *end)
{
    char *out = malloc(end - p + 1), *o = out;
    if (out == NULL)
        abort();
    if (p < end && (*p == '"' || *p == '\'')) {
        char q = *p++;
        while (p < end && *p != q) {
            if (q == '"' && *p == '\\' && p + 1 < end) {
                p++;
                *o++ = *p == 'n' ? '\n' : *p;
                p++;
            } else {
                *o++ = *p++;
            }
        }
        if (p == end) {
            free(out);
            return NULL;
        }
        p++;
        while (p < end && isspace((unsigned char)*p))
            p++;
        if (p < end && *p != '#') {
            free(out);
            return NULL;
        }
    } else {
        const char *e = p;
        while (e < end && !(*e == '#' && (e == p || isspace((unsigned char)e[-1]))))
            e++;
        while (e > p && isspace((unsigned char)e[-1]))
            e--;
        memcpy(o, p, e - p);
        o += e - p;
    }
    *o = '\0';
    return out;
}

static int parse_line(const char *p, const char *end, void (*cb)(const char *, const char *, void *), void *data)
{
    while (p < end && isspace((unsigned char)*p))
        p++;
    if (p == end || *p == '#')
        return 0;
    if (end - p > 7 && memcmp(p, "export", 6) == 0 && (p[6] == ' ' || p[6] == '\t'))
        for (p += 6; p < end && isspace((unsigned char)*p); p++)
            ;
    const char *k = p;
    while (p < end && (isalnum((unsigned char)*p) || *p == '_'))
        p++;
    if (p == k || isdigit((unsigned char)*k))
        return -1;
    size_t klen = p - k;
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    if (p == end || *p != '=')
        return -1;
    for (p++; p < end && (*p == ' ' || *p == '\t'); p++)
        ;
    char *value = parse_value(p, end);
    if (value == NULL || memchr(k, '\0', end - k) != NULL) {
        free(value);
        return -1;
    }
    char key[128];
    if (klen >= sizeof(key)) {
        free(value);
        return -1;
    }
    memcpy(key, k, klen);
    key[klen] = '\0';
    cb(key, value, data);
    free(value);
    return 0;
}

int gw_dotenv_parse(const char *buf, size_t len, void (*cb)(const char *, const char *, void *), void *data)
{
    int rejected = 0;
    const char *p = buf, *end = buf + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', end - p), *le = nl ? nl : end;
        const char *e = le > p && le[-1] == '\r' ? le - 1 : le;
        if (parse_line(p, e, cb, data) != 0)
            rejected++;
        p = nl ? nl + 1 : end;
    }
    return rejected;
}

static void dotenv_add(const char *key, const char *value, void *data)
{
    dotenv_t *d = data;
    d->keys = gw_xrealloc(d->keys, (d->n + 1) * sizeof(char *));
    d->values = gw_xrealloc(d->values, (d->n + 1) * sizeof(char *));
    d->keys[d->n] = gw_xstrdup(key);
    d->values[d->n] = gw_xstrdup(value);
    d->n++;
}

static int dotenv_load(dotenv_t *d, const char *path, char *err, size_t errlen)
{
    FILE *f = path ? fopen(path, "rb") : NULL;
    if (f == NULL)
        return 0; /* a missing .env is normal */
    char *buf = malloc(1 << 20);
    if (buf == NULL)
        abort();
    size_t n = fread(buf, 1, (1 << 20) - 1, f);
    int big = !feof(f);
    fclose(f);
    int rejected = big ? 1 : gw_dotenv_parse(buf, n, dotenv_add, d);
    free(buf);
    if (rejected) {
        snprintf(err, errlen, "%s: %s", path, big ? "file too large" : "malformed line (expected KEY=VALUE)");
        return -1;
    }
    return 0;
}

static const char *lookup(const dotenv_t *d, const char *name)
{
    const char *v = getenv(name);
    if (v != NULL)
        return v;
    for (size_t i = d->n; i-- > 0;)
        if (strcmp(d->keys[i], name) == 0)
            return d->values[i];
    return NULL;
}

/* The choice v names (case-insensitive) as the table spells it, so callers compare with strcmp; NULL when none. */
static char *enum_choice(const char *choices, const char *v)
{
    size_t n = strlen(v);
    for (const char *p = choices; n > 0 && p != NULL; p = strchr(p, '|'), p = p ? p + 1 : NULL) {
        if (strncasecmp(p, v, n) == 0 && (p[n] == '|' || p[n] == '\0')) {
            char *c = gw_xstrdup(p);
            c[n] = '\0';
            return c;
        }
    }
    return NULL;
}

static int set_var(void *out, const gw_config_var_t *v, const char *value, char *err, size_t errlen)
{
    char *field = (char *)out + v->offset;
    switch (v->type) {
    case GW_CFG_LONG: {
        char *end;
        errno = 0;
        long x = strtol(value, &end, 10);
        if (errno != 0 || end == value || *end != '\0' || x < v->min || x > v->max) {
            snprintf(err, errlen, "%s: expected an integer from %ld to %ld, got \"%.40s\"", v->name, v->min, v->max, value);
            return -1;
        }
        *(long *)field = x;
        return 0;
    }
    case GW_CFG_ENUM: {
        char *choice = enum_choice(v->choices, value);
        if (choice == NULL) {
            snprintf(err, errlen, "%s: expected one of %s, got \"%.40s\"", v->name, v->choices, value);
            return -1;
        }
        free(*(char **)field);
        *(char **)field = choice;
        return 0;
    }
    case GW_CFG_STRING:
        free(*(char **)field);
        *(char **)field = gw_xstrdup(value);
        return 0;
    }
    return -1;
}

static void secret_span(const char *p, size_t n)
{
    char pw[256];
    if (n > 0 && n < sizeof(pw)) {
        memcpy(pw, p, n);
        pw[n] = '\0';
        gw_log_secret(pw);
    }
}

/* A connection string's password is a secret of its own: a client library may echo the URL without it in errors. */
static void register_url_password(const char *url)
{
    const char *at = strrchr(url, '@'), *scheme = strstr(url, "://");
    if (at != NULL && scheme != NULL && scheme < at) {
        const char *colon = memchr(scheme + 3, ':', at - (scheme + 3));
        if (colon != NULL)
            secret_span(colon + 1, at - colon - 1);
    }
    const char *kw = strstr(url, "password=");
    if (kw != NULL)
        secret_span(kw + 9, strcspn(kw + 9, " &"));
}

static void register_secret(const gw_config_var_t *v, const char *value)
{
    if (v->secret == GW_CFG_PUBLIC || *value == '\0')
        return;
    gw_log_secret(value);
    if (v->secret == GW_CFG_SECRET_URL)
        register_url_password(value);
}

static void dotenv_free(dotenv_t *d)
{
    for (size_t i = 0; i < d->n; i++) {
        free(d->keys[i]);
        free(d->values[i]);
    }
    free(d->keys);
    free(d->values);
}

/* One variable: its value from the environment or .env, else its default, else unset (an error if required). */
static int load_var(const gw_config_var_t *v, const dotenv_t *d, void *out, unsigned need, char *err, size_t errlen)
{
    const char *value = lookup(d, v->name);
    if (value != NULL && *value == '\0' && v->type != GW_CFG_STRING)
        value = NULL; /* VAR= means "default" for numbers and choices */
    if (value == NULL)
        value = v->def;
    if (value == NULL) {
        if ((v->required & need) != 0) {
            snprintf(err, errlen, "%s: required but not set", v->name);
            return -1;
        }
        return 0;
    }
    if (set_var(out, v, value, err, errlen) != 0)
        return -1;
    register_secret(v, value); /* before the check: what it says about the value is redacted too */
    char why[200];
    if (v->check != NULL && v->check(value, why, sizeof(why)) != 0) {
        snprintf(err, errlen, "%s: %s", v->name, why);
        return -1;
    }
    return 0;
}

int gw_config_load(const gw_config_table_t *t, void *out, const char *dotenv_path, unsigned need, char *err, size_t errlen)
{
    dotenv_t d = {NULL, NULL, 0};
    for (size_t i = 0; i < t->nvars; i++) /* zero exactly the fields the table owns: out may hold more */
        memset((char *)out + t->vars[i].offset, 0, t->vars[i].type == GW_CFG_LONG ? sizeof(long) : sizeof(char *));
    int rc = dotenv_load(&d, dotenv_path, err, errlen);
    for (size_t i = 0; rc == 0 && i < t->nvars; i++)
        rc = load_var(&t->vars[i], &d, out, need, err, errlen);
    dotenv_free(&d);
    return rc;
}

void gw_config_free(const gw_config_table_t *t, void *out)
{
    for (size_t i = 0; i < t->nvars; i++) {
        if (t->vars[i].type != GW_CFG_LONG) {
            char **field = (char **)((char *)out + t->vars[i].offset);
            free(*field);
            *field = NULL;
        }
    }
}

static void describe_default(const gw_config_var_t *v, char *buf, size_t len)
{
    if (v->required != 0)
        snprintf(buf, len, "required");
    else if (v->def == NULL)
        snprintf(buf, len, "unset");
    else if (v->type == GW_CFG_LONG)
        snprintf(buf, len, "%s (%ld..%ld)", v->def, v->min, v->max);
    else if (v->type == GW_CFG_ENUM)
        snprintf(buf, len, "%s (%s)", v->def, v->choices);
    else
        snprintf(buf, len, "%s", v->def);
}

void gw_config_print_help(const gw_config_table_t *t, FILE *out)
{
    fprintf(out, "Environment (a .env file in the working directory is read too; the real environment wins):\n");
    for (size_t i = 0; i < t->nvars; i++) {
        char d[256];
        describe_default(&t->vars[i], d, sizeof(d));
        fprintf(out, "  %-22s %s\n  %-22s   default: %s\n", t->vars[i].name, t->vars[i].help, "", d);
    }
}

/* A table cell: '|' (enum choices, help text) would end the cell early. */
static void print_cell(FILE *out, const char *s)
{
    for (; *s != '\0'; s++) {
        if (*s == '|')
            fputc('\\', out);
        fputc(*s, out);
    }
}

void gw_config_print_markdown(const gw_config_table_t *t, FILE *out)
{
    fprintf(out, "| variable | default | meaning |\n|---|---|---|\n");
    for (size_t i = 0; i < t->nvars; i++) {
        char d[256];
        describe_default(&t->vars[i], d, sizeof(d));
        fprintf(out, "| `%s` | ", t->vars[i].name);
        print_cell(out, d);
        fputs(" | ", out);
        print_cell(out, t->vars[i].help);
        fputs(" |\n", out);
    }
}
