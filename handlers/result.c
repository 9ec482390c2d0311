#include "handlers/result.h"
#include "reactor/text.h"
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *jstr(json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

/* ---- timestamps --------------------------------------------------------------------------- */

/* Reads 1..maxdigits decimal digits; returns the count read (0 = none). */
static int read_digits(const char **p, int maxdigits, int *value)
{
    int n = 0, v = 0;
    while (n < maxdigits && isdigit((unsigned char)**p)) {
        v = v * 10 + (**p - '0');
        (*p)++;
        n++;
    }
    *value = v;
    return isdigit((unsigned char)**p) ? 0 : n; /* too many digits: reject */
}

int gw_parse_timestamp(const char *s, int *seconds)
{
    if (s == NULL)
        return -1;
    const char *p = s;
    while (isspace((unsigned char)*p))
        p++;
    bool bracket = *p == '[';
    if (bracket)
        p++;
    int a, b, c = -1, n;
    if ((n = read_digits(&p, 3, &a)) == 0 || *p++ != ':')
        return -1;
    if (read_digits(&p, 2, &b) != 2)
        return -1;
    if (*p == ':') { /* H:MM:SS: the first field was hours */
        p++;
        if (n > 2 || b > 59 || read_digits(&p, 2, &c) != 2)
            return -1;
    }
    if (bracket && *p++ != ']')
        return -1;
    while (isspace((unsigned char)*p))
        p++;
    if (*p != '\0')
        return -1;
    int total = c < 0 ? a * 60 + b : a * 3600 + b * 60 + c;
    if ((c < 0 ? b : c) > 59)
        return -1;
    *seconds = total;
    return 0;
}

void gw_format_timestamp(int seconds, char *out, size_t len)
{
    if (seconds < 0)
        seconds = 0;
    if (seconds < 3600)
        snprintf(out, len, "%02d:%02d", seconds / 60, seconds % 60);
    else
        snprintf(out, len, "%d:%02d:%02d", seconds / 3600, seconds / 60 % 60, seconds % 60);
}

/* ---- visual audit types ------------------------------------------------------------------- */

const char *const gw_result_visual_types[] = {"Chart",   "Slide",  "Diagram", "Code",  "Text", "Demo",
                                              "Product", "Person", "Scene",   "Other", NULL};

/* True when s[0..n) spells word, ignoring ASCII case. */
static bool spells(const char *s, size_t n, const char *word)
{
    return strlen(word) == n && strncasecmp(s, word, n) == 0;
}

const char *gw_result_visual_type(const char *s)
{
    if (s == NULL)
        return NULL;
    size_t a = strspn(s, " \t\r\n"), b = strlen(s);
    while (b > a && isspace((unsigned char)s[b - 1]))
        b--;
    for (size_t i = 0; gw_result_visual_types[i] != NULL; i++)
        if (spells(s + a, b - a, gw_result_visual_types[i]))
            return gw_result_visual_types[i];
    return spells(s + a, b - a, GW_RESULT_TYPE_SCENE_CHANGE) ? GW_RESULT_TYPE_SCENE_CHANGE : NULL;
}

/* ---- validation --------------------------------------------------------------------------- */

typedef struct st_gw_repairs_t {
    unsigned count;
    char notes[256];
    size_t len;
} gw_repairs_t;

static void repaired(gw_repairs_t *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void repaired(gw_repairs_t *r, const char *fmt, ...)
{
    r->count++;
    if (r->len + 4 >= sizeof(r->notes))
        return;
    if (r->len > 0)
        r->len += (size_t)snprintf(r->notes + r->len, sizeof(r->notes) - r->len, "; ");
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(r->notes + r->len, sizeof(r->notes) - r->len, fmt, ap);
    va_end(ap);
    r->len += n > 0 ? (size_t)n : 0;
    if (r->len >= sizeof(r->notes))
        r->len = sizeof(r->notes) - 1;
}

/* Returns a trimmed copy of a JSON string value as a new json string, or NULL when the value is
 * not a string or trims to nothing. *changed reports a trim. */
static json_t *trimmed(json_t *v, bool *changed)
{
    const char *s = json_string_value(v);
    if (s == NULL)
        return NULL;
    size_t len = json_string_length(v), a = 0, b = len;
    while (a < b && isspace((unsigned char)s[a]))
        a++;
    while (b > a && isspace((unsigned char)s[b - 1]))
        b--;
    if (a == b)
        return NULL;
    *changed = a > 0 || b < len;
    return *changed ? gw_must(json_stringn(s + a, b - a)) : json_incref(v);
}

/* Trims obj[key] in place; removes it when not a non-empty string. Returns true if it remains. */
static bool clean_string_field(json_t *obj, const char *key, gw_repairs_t *r, const char *where)
{
    json_t *v = json_object_get(obj, key);
    if (v == NULL)
        return false;
    bool changed = false;
    json_t *t = trimmed(v, &changed);
    if (t == NULL) {
        json_object_del(obj, key);
        repaired(r, "%s%s removed (empty or not a string)", where, key);
        return false;
    }
    if (changed)
        r->count++;
    json_object_set_new(obj, key, t);
    return true;
}

/* Keeps trimmed non-empty strings; with dedupe, drops ASCII-case-insensitive duplicates. */
static json_t *clean_string_array(json_t *arr, bool dedupe, gw_repairs_t *r, const char *what)
{
    json_t *out = gw_must(json_array()), *v;
    size_t i, dropped = 0, dups = 0;
    json_array_foreach(arr, i, v)
    {
        bool changed = false, dup = false;
        json_t *t = trimmed(v, &changed);
        if (t == NULL) {
            dropped++;
            continue;
        }
        for (size_t k = 0; dedupe && k < json_array_size(out) && !dup; k++)
            dup = strcasecmp(json_string_value(json_array_get(out, k)), json_string_value(t)) == 0;
        if (dup) {
            dups++;
            json_decref(t);
            continue;
        }
        if (changed)
            r->count++;
        json_array_append_new(out, t);
    }
    if (dropped)
        repaired(r, "%zu empty %s removed", dropped, what);
    if (dups)
        repaired(r, "%zu duplicate %s removed", dups, what);
    return out;
}

/* Drops keys of obj not in allowed (NULL-terminated). */
static void drop_unknown_keys(json_t *obj, const char *const *allowed, gw_repairs_t *r, const char *where)
{
    const char *key;
    json_t *v, *tmp;
    json_object_foreach_safe(obj, tmp, key, v)
    {
        bool known = false;
        for (size_t i = 0; allowed[i] != NULL && !known; i++)
            known = strcmp(allowed[i], key) == 0;
        if (!known) {
            repaired(r, "unknown %skey \"%.32s\" removed", where, key);
            json_object_del(obj, key);
        }
    }
}

/* Cleans the non-time fields of one entry; false drops the entry. */
typedef bool (*gw_entry_clean_cb)(json_t *entry, gw_repairs_t *r);

static bool clean_timeline_entry(json_t *e, gw_repairs_t *r)
{
    static const char *const allowed[] = {"timestamp", "description", "details", NULL};
    drop_unknown_keys(e, allowed, r, "timeline ");
    if (!clean_string_field(e, "description", r, "timeline "))
        return false;
    json_t *details = json_object_get(e, "details");
    if (!json_is_array(details)) {
        repaired(r, "timeline details %s", details ? "replaced (not an array)" : "added");
        json_object_set_new(e, "details", gw_must(json_array()));
        return true;
    }
    json_object_set_new(e, "details", clean_string_array(details, false, r, "timeline details"));
    return true;
}

static bool clean_visual_entry(json_t *e, gw_repairs_t *r)
{
    static const char *const allowed[] = {"timestamp", "detail", "type", NULL};
    drop_unknown_keys(e, allowed, r, "visualAudit ");
    if (!clean_string_field(e, "detail", r, "visualAudit "))
        return false;
    const char *type = gw_result_visual_type(jstr(e, "type"));
    if (type == NULL) {
        repaired(r, "visualAudit type %s set to Other", json_object_get(e, "type") != NULL ? "unknown," : "missing,");
        type = "Other";
    } else if (strcmp(type, jstr(e, "type")) != 0) {
        r->count++;
    }
    json_object_set_new(e, "type", gw_must(json_string(type)));
    return true;
}

/* Rebuilds arr keeping entries whose timestamp parses, lies within the duration and does not go
 * backwards; timestamps are normalized. Returns the cleaned array (new reference). */
static json_t *clean_timed(json_t *arr, double duration_s, gw_entry_clean_cb clean, gw_repairs_t *r, const char *what)
{
    json_t *out = gw_must(json_array()), *e;
    size_t i, bad = 0, late = 0, back = 0, invalid = 0;
    int last = -1;
    json_array_foreach(arr, i, e)
    {
        int sec;
        if (!json_is_object(e) || gw_parse_timestamp(jstr(e, "timestamp"), &sec) != 0) {
            bad++;
        } else if (duration_s >= 0 && sec > duration_s + 2.0) {
            late++;
        } else if (sec < last) {
            back++;
        } else {
            json_t *copy = gw_must(json_deep_copy(e));
            if (!clean(copy, r)) {
                invalid++;
                json_decref(copy);
                continue;
            }
            char ts[32];
            gw_format_timestamp(sec, ts, sizeof(ts));
            if (strcmp(ts, jstr(copy, "timestamp")) != 0)
                r->count++;
            json_object_set_new(copy, "timestamp", gw_must(json_string(ts)));
            json_array_append_new(out, copy);
            last = sec;
        }
    }
    if (bad)
        repaired(r, "%zu %s entries with bad timestamps dropped", bad, what);
    if (late)
        repaired(r, "%zu %s entries beyond the duration dropped", late, what);
    if (back)
        repaired(r, "%zu %s entries going backwards dropped", back, what);
    if (invalid)
        repaired(r, "%zu %s entries without text dropped", invalid, what);
    return out;
}

static int fail(char *err, size_t errlen, const char *msg)
{
    if (err != NULL && errlen > 0)
        snprintf(err, errlen, "%s", msg);
    return -1;
}

/* Stores a cleaned array under key; returns its size. */
static size_t store_list(json_t *result, const char *key, json_t *cleaned)
{
    size_t n = json_array_size(cleaned);
    json_object_set_new(result, key, cleaned);
    return n;
}

static int validate_lists(json_t *result, double duration_s, bool deep, gw_repairs_t *r, char *err, size_t errlen)
{
    json_t *kt = json_object_get(result, "keyTakeaways"), *tl = json_object_get(result, "timeline"),
           *kw = json_object_get(result, "keywords");
    if (!json_is_array(kt))
        return fail(err, errlen, kt ? "keyTakeaways is not an array" : "keyTakeaways missing");
    if (!json_is_array(tl))
        return fail(err, errlen, tl ? "timeline is not an array" : "timeline missing");
    if (!json_is_array(kw))
        return fail(err, errlen, kw ? "keywords is not an array" : "keywords missing");
    if (store_list(result, "keyTakeaways", clean_string_array(kt, false, r, "keyTakeaways")) == 0)
        return fail(err, errlen, "keyTakeaways empty");
    size_t had = json_array_size(tl); /* tl is freed when the cleaned array replaces it */
    if (store_list(result, "timeline", clean_timed(tl, duration_s, clean_timeline_entry, r, "timeline")) == 0)
        return fail(err, errlen, had ? "no usable timeline entry (timestamps invalid or out of range)" : "timeline empty");
    store_list(result, "keywords", clean_string_array(kw, true, r, "keywords"));
    if (!deep)
        return 0;
    json_t *va = json_object_get(result, "visualAudit");
    if (!json_is_array(va)) {
        repaired(r, "visualAudit %s", va ? "replaced (not an array)" : "added");
        json_object_set_new(result, "visualAudit", gw_must(json_array()));
        return 0;
    }
    store_list(result, "visualAudit", clean_timed(va, duration_s, clean_visual_entry, r, "visualAudit"));
    return 0;
}

int gw_result_validate_ex(json_t *result, double duration_s, bool deep, char *err, size_t errlen, unsigned *repairs)
{
    static const char *const std_keys[] = {"title", "modelTitle", "summary", "keyTakeaways", "timeline", "keywords", NULL};
    static const char *const deep_keys[] = {"title",    "modelTitle", "summary",     "keyTakeaways",
                                            "timeline", "keywords",   "visualAudit", NULL};
    gw_repairs_t r = {0};
    int rc;
    if (repairs != NULL)
        *repairs = 0;
    if (!json_is_object(result))
        return fail(err, errlen, "result is not a JSON object");
    drop_unknown_keys(result, deep ? deep_keys : std_keys, &r, "");
    clean_string_field(result, "title", &r, "");
    clean_string_field(result, "modelTitle", &r, "");
    if (!clean_string_field(result, "summary", &r, ""))
        return fail(err, errlen, "summary missing or empty");
    if ((rc = validate_lists(result, duration_s, deep, &r, err, errlen)) != 0)
        return rc;
    if (err != NULL && errlen > 0)
        snprintf(err, errlen, "%s", r.notes);
    if (repairs != NULL)
        *repairs = r.count;
    return 0;
}

int gw_result_validate(json_t *result, double duration_s, bool deep, char *err, size_t errlen)
{
    return gw_result_validate_ex(result, duration_s, deep, err, errlen, NULL);
}

/* A trimmed copy of s as a JSON string; NULL when s is NULL, blank or not UTF-8. */
static json_t *trimmed_cstr(const char *s)
{
    if (s == NULL)
        return NULL;
    size_t a = strspn(s, " \t\r\n"), b = strlen(s);
    while (b > a && isspace((unsigned char)s[b - 1]))
        b--;
    return a < b ? json_stringn(s + a, b - a) : NULL;
}

int gw_result_fill_title(json_t *result, const char *video_title)
{
    if (!json_is_object(result))
        return 0;
    bool changed = false;
    json_t *model = trimmed(json_object_get(result, "title"), &changed), *video = trimmed_cstr(video_title);
    json_object_del(result, "modelTitle");
    if (video == NULL) {
        if (model != NULL)
            json_object_set_new(result, "title", model); /* set in place: the key keeps its position */
        else
            json_object_del(result, "title");
        return 0;
    }
    json_object_set_new(result, "title", video);
    if (model != NULL && strcasecmp(json_string_value(model), json_string_value(video)) != 0)
        json_object_set_new(result, "modelTitle", model);
    else
        json_decref(model);
    return 1;
}
