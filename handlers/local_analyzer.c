#define _GNU_SOURCE /* memmem */
#include "handlers/local_analyzer.h"
#include "handlers/local_doc.h"
#include "handlers/result.h"
#include "reactor/text.h"
#include <ctype.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define TILE_BLOCK 3 /* sentences on each side of a gap (TextTiling block size) */
#define MAX_KEYWORDS 10
#define MAX_SCENES 40
#define DESC_MAX 180 /* bytes of a timeline description before it is shortened at a word boundary */

bool gw_analyzer_is_local(const char *analyzer, const char *gemini_api_key)
{
    if (analyzer != NULL && strcmp(analyzer, "local") == 0)
        return true;
    if (analyzer != NULL && strcmp(analyzer, "gemini") == 0)
        return false;
    return gemini_api_key == NULL || *gemini_api_key == '\0';
}

/* ---- selection ---- */

/* Maximal marginal relevance: repeatedly takes the candidate with the best lambda*score - (1-lambda)*max similarity to
 * what was taken. Candidates: flag[i] == 1. Picks at most k; returns how many, indices in pick order. */
static size_t mmr(const gw_local_doc_t *d, const char *flag, size_t k, double lambda, size_t *out)
{
    double top = 0;
    size_t got = 0;
    for (size_t i = 0; i < d->n; i++)
        if (flag[i] && d->s[i].score > top)
            top = d->s[i].score;
    char *taken = calloc(d->n, 1);
    if (taken == NULL)
        abort();
    while (got < k) {
        double best = -1e300;
        size_t bi = SIZE_MAX;
        for (size_t i = 0; i < d->n; i++) {
            if (!flag[i] || taken[i])
                continue;
            double red = 0;
            for (size_t j = 0; j < got; j++) {
                double c = gw_local_cosine(&d->s[i], &d->s[out[j]]);
                red = c > red ? c : red;
            }
            double v = lambda * (top > 0 ? d->s[i].score / top : 0) - (1 - lambda) * red;
            if (v > best + 1e-12) {
                best = v;
                bi = i;
            }
        }
        if (bi == SIZE_MAX)
            break;
        taken[bi] = 1;
        out[got++] = bi;
    }
    free(taken);
    return got;
}

static int cmp_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? -1 : x > y;
}

static size_t summary_size(size_t n)
{
    return n <= 4 ? 1 : n <= 12 ? 2 : n <= 40 ? 3 : n <= 150 ? 4 : 5;
}

/* Summary: central sentences of at least 6 words (any when none is that long), in spoken order. Marks them in used. */
static json_t *make_summary(const gw_local_doc_t *d, char *used)
{
    char *flag = gw_xmalloc(d->n);
    size_t *pick = gw_xmalloc(d->n * sizeof(size_t)), nlong = 0;
    for (size_t i = 0; i < d->n; i++)
        nlong += (flag[i] = d->s[i].nwords >= 6);
    if (nlong == 0)
        memset(flag, 1, d->n);
    size_t k = mmr(d, flag, summary_size(d->n), 0.75, pick);
    qsort(pick, k, sizeof(size_t), cmp_size);
    size_t len = 1;
    for (size_t i = 0; i < k; i++)
        len += strlen(d->s[pick[i]].text) + 1;
    char *text = gw_xmalloc(len);
    text[0] = '\0';
    for (size_t i = 0; i < k; i++) {
        if (i > 0)
            strcat(text, " ");
        strcat(text, d->s[pick[i]].text);
        used[pick[i]] = 1;
    }
    json_t *out = gw_must(json_string(text));
    free(text);
    free(pick);
    free(flag);
    return out;
}

static json_t *make_takeaways(const gw_local_doc_t *d, const char *used)
{
    size_t want = d->n / 4 < 3 ? 3 : d->n / 4 > 7 ? 7 : d->n / 4, left = 0;
    char *flag = gw_xmalloc(d->n);
    size_t *pick = gw_xmalloc(d->n * sizeof(size_t));
    for (size_t i = 0; i < d->n; i++)
        left += (flag[i] = !used[i] && d->s[i].nwords >= 4);
    if (left < 3) /* too short a transcript to avoid repeating the summary */
        for (size_t i = 0; i < d->n; i++)
            flag[i] = 1;
    size_t k = mmr(d, flag, want, 0.65, pick);
    json_t *arr = gw_must(json_array());
    for (size_t i = 0; i < k; i++)
        json_array_append_new(arr, gw_must(json_string(d->s[pick[i]].text)));
    free(pick);
    free(flag);
    return arr;
}

/* ---- timeline ---- */

/* Shortens at a word boundary so descriptions stay one line; the text stays a prefix of what was said. */
static json_t *short_text(const char *s)
{
    size_t n = strlen(s);
    if (n <= DESC_MAX)
        return gw_must(json_string(s));
    size_t cut = DESC_MAX;
    while (cut > DESC_MAX / 2 && s[cut] != ' ')
        cut--;
    if (s[cut] != ' ') /* no blank (e.g. Japanese): cut between UTF-8 characters */
        for (cut = DESC_MAX; cut > 0 && ((unsigned char)s[cut] & 0xC0) == 0x80; cut--)
            ;
    char *b = gw_xmalloc(cut + 4);
    memcpy(b, s, cut);
    memcpy(b + cut, "...", 4);
    json_t *j = gw_must(json_string(b));
    free(b);
    return j;
}

typedef struct st_clock_t {
    int last;
    double duration;
} tclock_t;

/* A timestamp clamped into [last, duration]: monotonic and within the video. */
static json_t *stamp(tclock_t *c, double seconds)
{
    int s = seconds < 0 ? 0 : (int)seconds;
    if (c->duration >= 0 && s > (int)c->duration)
        s = (int)c->duration;
    if (s < c->last)
        s = c->last;
    c->last = s;
    char ts[32];
    gw_format_timestamp(s, ts, sizeof(ts));
    return gw_must(json_string(ts));
}

/* Index of the most central sentence in [from, to) not equal to skip; SIZE_MAX when none. */
static size_t best_in(const gw_local_doc_t *d, size_t from, size_t to, size_t skip)
{
    size_t bi = SIZE_MAX;
    for (size_t i = from; i < to; i++)
        if (i != skip && (bi == SIZE_MAX || d->s[i].score > d->s[bi].score + 1e-12))
            bi = i;
    return bi;
}

/* "Key terms: a, b, c": the section's terms with the highest summed weight. */
static json_t *section_terms(const gw_local_doc_t *d, size_t from, size_t to)
{
    uint32_t best[3] = {0};
    double bw[3] = {0};
    double *acc = calloc(d->nt ? d->nt : 1, sizeof(double));
    if (acc == NULL)
        abort();
    for (size_t i = from; i < to; i++)
        for (size_t k = 0; k < d->s[i].nterm; k++)
            acc[d->s[i].term[k]] += d->s[i].w[k];
    for (uint32_t t = 0; t < d->nt; t++)
        for (int r = 0; r < 3; r++)
            if (acc[t] > bw[r] + 1e-12) {
                memmove(&best[r + 1], &best[r], (2 - r) * sizeof(best[0]));
                memmove(&bw[r + 1], &bw[r], (2 - r) * sizeof(bw[0]));
                best[r] = t;
                bw[r] = acc[t];
                break;
            }
    free(acc);
    char buf[256] = "Key terms: ";
    int got = 0;
    for (int r = 0; r < 3 && bw[r] > 0; r++, got++) {
        strncat(buf, d->t[best[r]].key, sizeof(buf) - strlen(buf) - 3);
        if (r < 2 && bw[r + 1] > 0)
            strcat(buf, ", ");
    }
    return got ? gw_must(json_string(buf)) : NULL;
}

static json_t *section_entry(const gw_local_doc_t *d, tclock_t *c, double at, const char *title, size_t from, size_t to)
{
    json_t *e = gw_must(json_object()), *details = gw_must(json_array());
    size_t b1 = best_in(d, from, to, SIZE_MAX);
    json_object_set_new(e, "timestamp", stamp(c, at));
    if (title != NULL) {
        json_object_set_new(e, "description", gw_must(json_string(title)));
        if (b1 != SIZE_MAX)
            json_array_append_new(details, short_text(d->s[b1].text));
    } else {
        json_object_set_new(e, "description", short_text(d->s[b1].text));
        size_t b2 = to - from >= 3 ? best_in(d, from, to, b1) : SIZE_MAX;
        if (b2 != SIZE_MAX)
            json_array_append_new(details, short_text(d->s[b2].text));
    }
    json_t *terms = from < to ? section_terms(d, from, to) : NULL;
    if (terms != NULL)
        json_array_append_new(details, terms);
    json_object_set_new(e, "details", details);
    return e;
}

static int cmp_chapter(const void *a, const void *b)
{
    const gw_chapter_t *x = a, *y = b;
    return x->start < y->start ? -1 : x->start > y->start;
}

static json_t *timeline_from_chapters(const gw_local_doc_t *d, const gw_video_meta_t *m)
{
    gw_chapter_t *ch = gw_xmalloc(m->nchapters * sizeof(gw_chapter_t));
    memcpy(ch, m->chapters, m->nchapters * sizeof(gw_chapter_t));
    qsort(ch, m->nchapters, sizeof(gw_chapter_t), cmp_chapter); /* ties keep no order guarantee; starts are distinct */
    json_t *arr = gw_must(json_array());
    tclock_t c = {0, m->duration};
    size_t si = 0;
    for (size_t k = 0; k < m->nchapters; k++) {
        if (m->duration >= 0 && ch[k].start > m->duration)
            break;
        double next = k + 1 < m->nchapters ? ch[k + 1].start : 1e18;
        size_t from = si;
        while (si < d->n && (double)d->s[si].start_ms / 1000.0 < next)
            si++;
        json_array_append_new(arr, section_entry(d, &c, ch[k].start, ch[k].title, from, si));
    }
    free(ch);
    return arr;
}

/* Block cohesion at each gap g (between sentences g-1 and g): cosine of the summed weights of the blocks around it.
 * Sparse: only the terms of the 2 * TILE_BLOCK sentences are touched, so long transcripts stay linear. */
static void cohesion(const gw_local_doc_t *d, double *coh)
{
    double *l = calloc(d->nt ? d->nt : 1, sizeof(double)), *r = calloc(d->nt ? d->nt : 1, sizeof(double));
    gw_local_ids_t touched = {0};
    if (l == NULL || r == NULL)
        abort();
    for (size_t g = 1; g < d->n; g++) {
        size_t lo = g > TILE_BLOCK ? g - TILE_BLOCK : 0, hi = g + TILE_BLOCK < d->n ? g + TILE_BLOCK : d->n;
        touched.n = 0;
        for (size_t i = lo; i < hi; i++)
            for (size_t k = 0; k < d->s[i].nterm; k++) {
                uint32_t t = d->s[i].term[k];
                if (l[t] == 0 && r[t] == 0)
                    gw_local_ids_push(&touched, t);
                (i < g ? l : r)[t] += d->s[i].w[k];
            }
        double dot = 0, nl = 0, nr = 0;
        for (size_t j = 0; j < touched.n; j++) {
            uint32_t t = touched.id[j];
            dot += l[t] * r[t];
            nl += l[t] * l[t];
            nr += r[t] * r[t];
            l[t] = r[t] = 0;
        }
        coh[g] = nl > 0 && nr > 0 ? dot / sqrt(nl * nr) : 0;
    }
    free(touched.id);
    free(l);
    free(r);
}

/* TextTiling depth: how far cohesion at g lies below the peaks on either side. */
static double depth_at(const double *coh, size_t n, size_t g)
{
    double hl = coh[g], hr = coh[g];
    for (size_t j = g; j > 1 && coh[j - 1] >= hl; j--)
        hl = coh[j - 1];
    for (size_t j = g; j + 1 < n && coh[j + 1] >= hr; j++)
        hr = coh[j + 1];
    return (hl - coh[g]) + (hr - coh[g]);
}

/* Chooses section starts (sentence indices, first is 0): deepest gaps above the TextTiling cutoff (mean - sd/2), at
 * least two sentences and 5 s apart, at most one section per ~40 s of speech. Returns how many. */
static size_t topic_starts(const gw_local_doc_t *d, size_t *starts, size_t max)
{
    size_t n = d->n, k = 1;
    starts[0] = 0;
    if (n < 4 || max < 2)
        return 1;
    double *coh = calloc(n, sizeof(double)), *dep = calloc(n, sizeof(double)), mean = 0, var = 0;
    if (coh == NULL || dep == NULL)
        abort();
    cohesion(d, coh);
    for (size_t g = 1; g < n; g++)
        mean += (dep[g] = depth_at(coh, n, g));
    mean /= (double)(n - 1);
    for (size_t g = 1; g < n; g++)
        var += (dep[g] - mean) * (dep[g] - mean);
    double cutoff = mean - sqrt(var / (double)(n - 1)) / 2;
    while (k < max) {
        size_t bg = 0;
        for (size_t g = 2; g + 1 < n; g++) {
            bool ok = dep[g] > cutoff && dep[g] > 1e-9 && (bg == 0 || dep[g] > dep[bg] + 1e-12);
            for (size_t j = 0; ok && j < k; j++) {
                size_t a = starts[j] < g ? starts[j] : g, b = starts[j] < g ? g : starts[j];
                ok = b - a >= 2 && llabs(d->s[b].start_ms - d->s[a].start_ms) >= 5000;
            }
            if (ok)
                bg = g;
        }
        if (bg == 0)
            break;
        starts[k++] = bg;
    }
    free(coh);
    free(dep);
    qsort(starts, k, sizeof(size_t), cmp_size);
    return k;
}

static json_t *timeline_from_topics(const gw_local_doc_t *d, double duration)
{
    double spoken = (double)(d->s[d->n - 1].end_ms - d->s[0].start_ms) / 1000.0;
    size_t max = (size_t)(spoken / 40.0) + 2;
    max = max > 12 ? 12 : max;
    size_t *starts = gw_xmalloc((max + 1) * sizeof(size_t));
    size_t k = topic_starts(d, starts, max);
    json_t *arr = gw_must(json_array());
    tclock_t c = {0, duration};
    for (size_t j = 0; j < k; j++) {
        size_t to = j + 1 < k ? starts[j + 1] : d->n;
        json_array_append_new(arr, section_entry(d, &c, (double)d->s[starts[j]].start_ms / 1000.0, NULL, starts[j], to));
    }
    free(starts);
    return arr;
}

/* ---- keywords ---- */

typedef struct st_kw_t {
    size_t id;
    double score;
} kw_t;

static int cmp_kw(const void *a, const void *b)
{
    const kw_t *x = a, *y = b;
    if (x->score != y->score)
        return x->score > y->score ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

static bool contains_word(const char *phrase, const char *word)
{
    size_t n = strlen(word);
    for (const char *p = phrase; (p = strstr(p, word)) != NULL; p++)
        if ((p == phrase || p[-1] == ' ') && (p[n] == '\0' || p[n] == ' '))
            return true;
    return false;
}

/* Frequency weighted by spread (sentences using the term) and length (longer words are more specific); phrases count
 * when repeated. A word inside an already chosen phrase is skipped. */
static json_t *make_keywords(const gw_local_doc_t *d)
{
    kw_t *c = gw_xmalloc((d->nt ? d->nt : 1) * sizeof(kw_t));
    size_t nc = 0, repeated = 0;
    for (size_t t = 0; t < d->nt; t++)
        repeated += !d->t[t].phrase && d->t[t].count >= 2;
    for (size_t t = 0; t < d->nt; t++) {
        const gw_local_term_t *x = &d->t[t];
        if ((x->phrase && x->count < 2) || (!x->phrase && repeated >= 5 && x->count < 2))
            continue;
        double s = x->phrase ? 1.6 * x->count : x->count * (1 + log(1.0 + x->df)) * log2(2.0 + (double)strlen(x->key)) / 3;
        c[nc++] = (kw_t){t, s};
    }
    qsort(c, nc, sizeof(kw_t), cmp_kw);
    json_t *arr = gw_must(json_array());
    const char *chosen[MAX_KEYWORDS];
    size_t got = 0;
    for (size_t i = 0; i < nc && got < MAX_KEYWORDS; i++) {
        const char *k = d->t[c[i].id].key;
        bool dup = false;
        for (size_t j = 0; j < got && !dup; j++)
            dup = contains_word(chosen[j], k) || contains_word(k, chosen[j]);
        if (dup)
            continue;
        chosen[got++] = k;
        json_array_append_new(arr, gw_must(json_string(k)));
    }
    free(c);
    return arr;
}

/* ---- visual audit ---- */

static size_t sentence_at(const gw_local_doc_t *d, double t)
{
    size_t bi = SIZE_MAX;
    for (size_t i = 0; i < d->n && (double)d->s[i].start_ms / 1000.0 <= t + 0.5; i++)
        bi = i;
    return bi;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static json_t *visual_entry(const gw_local_doc_t *d, tclock_t *c, double t)
{
    json_t *e = gw_must(json_object());
    size_t si = sentence_at(d, t);
    char buf[DESC_MAX + 96];
    json_object_set_new(e, "timestamp", stamp(c, t));
    if (si != SIZE_MAX) {
        json_t *said = short_text(d->s[si].text);
        snprintf(buf, sizeof(buf), "The picture changes; narration at this point: \"%s\"", json_string_value(said));
        json_decref(said);
    } else {
        snprintf(buf, sizeof(buf), "The picture changes before any narration");
    }
    json_object_set_new(e, "detail", gw_must(json_string(buf)));
    json_object_set_new(e, "type", gw_must(json_string(GW_RESULT_TYPE_SCENE_CHANGE)));
    return e;
}

static json_t *make_visual_audit(const gw_local_doc_t *d, const gw_local_input_t *in, double duration)
{
    json_t *arr = gw_must(json_array());
    double *t = gw_xmalloc((in->nscene_times ? in->nscene_times : 1) * sizeof(double)), last = -10;
    size_t n = 0, kept = 0;
    for (size_t i = 0; i < in->nscene_times; i++)
        if (in->scene_times[i] >= 0 && (duration < 0 || in->scene_times[i] <= duration))
            t[n++] = in->scene_times[i];
    qsort(t, n, sizeof(double), cmp_double);
    tclock_t c = {0, duration};
    for (size_t i = 0; i < n && kept < MAX_SCENES; i++) {
        if (t[i] - last < 2.0) /* fades and flashes give bursts of changes: one entry per burst */
            continue;
        last = t[i];
        json_array_append_new(arr, visual_entry(d, &c, t[i]));
        kept++;
    }
    free(t);
    return arr;
}

/* ---- scene detection (ffmpeg) ---- */

char **gw_local_argv_scenes(const char *ffmpeg_path, const char *path, const char *threshold)
{
    char vf[96];
    snprintf(vf, sizeof(vf), "select='gt(scene,%s)',showinfo", threshold ? threshold : GW_LOCAL_SCENE_THRESHOLD);
    const char *v[] = {ffmpeg_path ? ffmpeg_path : "ffmpeg",
                       "-nostdin",
                       "-hide_banner",
                       "-v",
                       "info",
                       "-i",
                       path,
                       "-an",
                       "-sn",
                       "-dn",
                       "-vf",
                       vf,
                       "-f",
                       "null",
                       "-"};
    size_t n = sizeof(v) / sizeof(v[0]);
    char **argv = calloc(n + 1, sizeof(char *));
    if (argv == NULL)
        abort();
    for (size_t i = 0; i < n; i++)
        argv[i] = gw_xstrdup(v[i]);
    return argv;
}

size_t gw_local_parse_scenes(const char *stderr_text, double **times_out)
{
    size_t n = 0, cap = 0;
    double *t = NULL;
    *times_out = NULL;
    for (const char *p = stderr_text; p != NULL && *p != '\0';) {
        const char *eol = strpbrk(p, "\r\n");
        size_t len = eol != NULL ? (size_t)(eol - p) : strlen(p);
        const char *q = memmem(p, len, "pts_time:", 9);
        bool ours = memmem(p, len, "Parsed_showinfo", 15) != NULL;
        p = eol != NULL ? eol + 1 : NULL;
        if (q == NULL || !ours)
            continue;
        char *end;
        double v = strtod(q + 9, &end);
        if (end == q + 9 || !(v >= 0) || v > 1e7)
            continue;
        if (n == cap)
            t = gw_xrealloc(t, (cap = cap ? cap * 2 : 32) * sizeof(double));
        t[n++] = v;
    }
    if (n == 0) {
        free(t);
        return 0;
    }
    qsort(t, n, sizeof(double), cmp_double);
    size_t k = 1;
    for (size_t i = 1; i < n; i++)
        if (t[i] != t[k - 1])
            t[k++] = t[i];
    *times_out = t;
    return k;
}

/* ---- entry point ---- */

json_t *gw_local_analyze(const gw_local_input_t *in, char *err, size_t errlen)
{
    gw_local_doc_t d;
    if (gw_local_doc_build(&d, in->tr) == 0) {
        snprintf(err, errlen, "the transcript holds no text");
        gw_local_doc_free(&d);
        return NULL;
    }
    for (size_t i = 0; i < d.n; i++) /* centrality alone favours short greetings; weigh in how much a sentence says */
        d.s[i].score *= log(2.0 + (double)d.s[i].nterm);
    char *used = calloc(d.n, 1);
    if (used == NULL)
        abort();
    json_t *r = gw_must(json_object());
    if (in->meta != NULL && in->meta->title != NULL && *in->meta->title != '\0')
        json_object_set_new(r, "title", gw_must(json_string(in->meta->title)));
    json_object_set_new(r, "summary", make_summary(&d, used));
    json_object_set_new(r, "keyTakeaways", make_takeaways(&d, used));
    double duration = in->meta != NULL ? in->meta->duration : -1;
    bool chapters = in->meta != NULL && in->meta->nchapters > 0;
    json_object_set_new(r, "timeline", chapters ? timeline_from_chapters(&d, in->meta) : timeline_from_topics(&d, duration));
    json_object_set_new(r, "keywords", make_keywords(&d));
    if (in->deep)
        json_object_set_new(r, "visualAudit", make_visual_audit(&d, in, duration));
    free(used);
    gw_local_doc_free(&d);
    return r;
}
