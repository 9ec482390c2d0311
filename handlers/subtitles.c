#include "handlers/subtitles.h"
#include "reactor/text.h"
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------------------------------------------------------------
 * small helpers
 * ------------------------------------------------------------------------------------------------------------------- */

/* Appends code point cp as UTF-8 (cp must be a valid scalar value). */
static void buf_put_utf8(gw_buf_t *b, uint32_t cp)
{
    char s[4];
    if (cp < 0x80) {
        s[0] = (char)cp;
        gw_buf_append(b, s, 1);
    } else if (cp < 0x800) {
        s[0] = (char)(0xC0 | (cp >> 6));
        s[1] = (char)(0x80 | (cp & 0x3F));
        gw_buf_append(b, s, 2);
    } else if (cp < 0x10000) {
        s[0] = (char)(0xE0 | (cp >> 12));
        s[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        s[2] = (char)(0x80 | (cp & 0x3F));
        gw_buf_append(b, s, 3);
    } else {
        s[0] = (char)(0xF0 | (cp >> 18));
        s[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        s[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        s[3] = (char)(0x80 | (cp & 0x3F));
        gw_buf_append(b, s, 4);
    }
}

/* ---------------------------------------------------------------------------------------------------------------------
 * transcript text
 * ------------------------------------------------------------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s (its code point in *cp), or 0 when invalid (overlong, surrogate, > U+10FFFF,
 * truncated). */
static size_t utf8_seq(const unsigned char *s, size_t n, uint32_t *cp)
{
    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    }
    size_t len = s[0] >= 0xC2 && s[0] <= 0xDF ? 2 : s[0] >= 0xE0 && s[0] <= 0xEF ? 3 : s[0] >= 0xF0 && s[0] <= 0xF4 ? 4 : 0;
    if (len == 0 || n < len)
        return 0;
    unsigned char lo = 0x80, hi = 0xBF;
    if (s[0] == 0xE0)
        lo = 0xA0;
    else if (s[0] == 0xED)
        hi = 0x9F;
    else if (s[0] == 0xF0)
        lo = 0x90;
    else if (s[0] == 0xF4)
        hi = 0x8F;
    if (s[1] < lo || s[1] > hi)
        return 0;
    uint32_t c = s[0] & (0x7F >> len);
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        c = (c << 6) | (s[i] & 0x3F);
    }
    *cp = c;
    return len;
}

static bool cp_is_space(uint32_t cp)
{
    return cp <= 0x20 || (cp >= 0x7F && cp <= 0xA0) || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 ||
           cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000 || cp == 0xFEFF;
}

/* Makes transcript text: valid UTF-8, controls and every kind of space collapsed to one ' ', trimmed. NULL when
 * nothing but whitespace remains. */
static char *clean_text(const char *s, size_t n)
{
    gw_buf_t b = {0};
    bool space = false;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t k = utf8_seq((const unsigned char *)s + i, n - i, &cp);
        if (k == 0) {
            cp = 0xFFFD;
            k = 1;
        }
        i += k;
        if (cp_is_space(cp)) {
            space = b.len > 0;
            continue;
        }
        if (space)
            gw_buf_putc(&b, ' ');
        space = false;
        buf_put_utf8(&b, cp);
    }
    return b.data;
}

/* Removes markup from a VTT/SRT payload line: <c>, <i>, <v Speaker>, <00:00:01.000>, <font ...>, and SRT's {\an8}.
 * A '<' with no closing '>' on the line is text. <br> becomes a space. */
static void strip_tags(const char *s, size_t n, gw_buf_t *out)
{
    for (size_t i = 0; i < n; i++) {
        const char *close;
        if (s[i] == '<' && (close = memchr(s + i, '>', n - i)) != NULL) {
            if (close - (s + i) >= 3 && gw_ascii_lower((unsigned char)s[i + 1]) == 'b' &&
                gw_ascii_lower((unsigned char)s[i + 2]) == 'r')
                gw_buf_putc(out, ' ');
            i = (size_t)(close - s);
        } else if (s[i] == '{' && i + 1 < n && s[i + 1] == '\\' && (close = memchr(s + i, '}', n - i)) != NULL) {
            i = (size_t)(close - s);
        } else {
            gw_buf_putc(out, s[i]);
        }
    }
}

/* Decodes one entity body (between '&' and ';'); false when unknown, leaving the text as written. */
static bool entity_decode(const char *e, size_t n, gw_buf_t *out)
{
    static const struct {
        const char *name, *text;
    } named[] = {{"amp", "&"},  {"lt", "<"}, {"gt", ">"}, {"quot", "\""}, {"apos", "'"},
                 {"nbsp", " "}, {"lrm", ""}, {"rlm", ""}, {NULL, NULL}};
    for (int i = 0; named[i].name != NULL; i++) {
        if (n == strlen(named[i].name) && memcmp(e, named[i].name, n) == 0) {
            gw_buf_puts(out, named[i].text);
            return true;
        }
    }
    if (n < 2 || n > 8 || e[0] != '#')
        return false;
    bool hex = gw_ascii_lower((unsigned char)e[1]) == 'x';
    uint32_t cp = 0;
    size_t i = hex ? 2 : 1;
    if (i == n)
        return false;
    for (; i < n; i++) {
        int c = (unsigned char)e[i];
        if (!(hex ? gw_ascii_is_hex(c) : gw_ascii_is_digit(c)))
            return false;
        cp = cp * (hex ? 16 : 10) + (uint32_t)gw_ascii_hexval(c);
    }
    if (cp == 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return false;
    buf_put_utf8(out, cp);
    return true;
}

static void decode_entities(const char *s, size_t n, gw_buf_t *out)
{
    for (size_t i = 0; i < n; i++) {
        const char *semi;
        if (s[i] == '&' && (semi = memchr(s + i + 1, ';', n - i - 1 < 10 ? n - i - 1 : 10)) != NULL &&
            entity_decode(s + i + 1, (size_t)(semi - s - i - 1), out)) {
            i = (size_t)(semi - s);
            continue;
        }
        gw_buf_putc(out, s[i]);
    }
}

/* A payload line as transcript text, or NULL when it holds nothing but markup and blanks. */
static char *cue_line_text(const char *s, size_t n)
{
    gw_buf_t tags = {0}, ents = {0};
    strip_tags(s, n, &tags);
    if (tags.len > 0)
        decode_entities(tags.data, tags.len, &ents);
    char *text = ents.len > 0 ? clean_text(ents.data, ents.len) : NULL;
    free(tags.data);
    free(ents.data);
    return text;
}

/* ---------------------------------------------------------------------------------------------------------------------
 * segments
 * ------------------------------------------------------------------------------------------------------------------- */

typedef struct st_gw_segvec_t {
    gw_segment_t *v;
    size_t n, cap;
} gw_segvec_t;

static void segvec_push(gw_segvec_t *sv, int64_t start, int64_t end, char *text)
{
    if (sv->n == sv->cap) {
        sv->cap = sv->cap == 0 ? 64 : sv->cap * 2;
        sv->v = gw_xrealloc(sv->v, sv->cap * sizeof(*sv->v));
    }
    sv->v[sv->n++] = (gw_segment_t){.start_ms = start, .end_ms = end < start ? start : end, .text = text};
}

static void segvec_free(gw_segvec_t *sv)
{
    for (size_t i = 0; i < sv->n; i++)
        free(sv->v[i].text);
    free(sv->v);
    memset(sv, 0, sizeof(*sv));
}

/* Stable merge sort by start: cues sharing a start keep file order. */
static void seg_msort(gw_segment_t *v, gw_segment_t *tmp, size_t n)
{
    if (n < 2)
        return;
    size_t h = n / 2, i = 0, j = h, k = 0;
    seg_msort(v, tmp, h);
    seg_msort(v + h, tmp, n - h);
    if (v[h - 1].start_ms <= v[h].start_ms)
        return; /* already ordered: the common case for subtitle files */
    while (i < h && j < n)
        tmp[k++] = v[j].start_ms < v[i].start_ms ? v[j++] : v[i++];
    while (i < h)
        tmp[k++] = v[i++];
    while (j < n)
        tmp[k++] = v[j++];
    memcpy(v, tmp, n * sizeof(*v));
}

static void segvec_finish(gw_segvec_t *sv, gw_transcript_t *out, const char *source)
{
    if (sv->n > 1) {
        gw_segment_t *tmp = gw_xmalloc(sv->n * sizeof(*tmp));
        seg_msort(sv->v, tmp, sv->n);
        free(tmp);
    }
    /* A cue without a duration lasts until the next one starts. */
    for (size_t i = 0; i + 1 < sv->n; i++)
        if (sv->v[i].end_ms == sv->v[i].start_ms && sv->v[i + 1].start_ms > sv->v[i].start_ms)
            sv->v[i].end_ms = sv->v[i + 1].start_ms;
    out->segments = sv->v;
    out->nsegments = sv->n;
    out->source = gw_xstrdup(source);
    memset(sv, 0, sizeof(*sv));
}

/* ---------------------------------------------------------------------------------------------------------------------
 * json3
 * ------------------------------------------------------------------------------------------------------------------- */

/* Milliseconds from a JSON number: integral or real, 0 <= v <= 1e15 (31,000 years); -1 otherwise. */
static int64_t json_ms(json_t *v)
{
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        return i >= 0 && i <= (json_int_t)1000000000000000LL ? (int64_t)i : -1;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        return isfinite(d) && d >= 0 && d <= 1e15 ? (int64_t)d : -1;
    }
    return -1;
}

static char *json3_event_text(json_t *segs)
{
    gw_buf_t b = {0};
    size_t i;
    json_t *seg;
    json_array_foreach(segs, i, seg)
    {
        json_t *u = json_object_get(seg, "utf8");
        if (json_is_string(u))
            gw_buf_append(&b, json_string_value(u), json_string_length(u));
    }
    char *text = b.len > 0 ? clean_text(b.data, b.len) : NULL;
    free(b.data);
    return text;
}

int gw_parse_json3(const char *buf, size_t len, gw_transcript_t *out)
{
    gw_segvec_t sv = {0};
    memset(out, 0, sizeof(*out));
    json_t *root = buf != NULL ? json_loadb(buf, len, JSON_ALLOW_NUL, NULL) : NULL;
    json_t *events = json_object_get(root, "events");
    if (!json_is_array(events)) {
        json_decref(root);
        return -1;
    }
    size_t i;
    json_t *ev;
    json_array_foreach(events, i, ev)
    {
        json_t *append = json_object_get(ev, "aAppend"), *segs = json_object_get(ev, "segs");
        int64_t start = json_ms(json_object_get(ev, "tStartMs")), dur = json_ms(json_object_get(ev, "dDurationMs"));
        char *text;
        /* aAppend events only carry the line break between two rolling lines. */
        if ((append != NULL && !json_is_false(append) && !(json_is_integer(append) && json_integer_value(append) == 0)) ||
            !json_is_array(segs) || start < 0 || (text = json3_event_text(segs)) == NULL)
            continue;
        segvec_push(&sv, start, start + (dur > 0 ? dur : 0), text);
    }
    segvec_finish(&sv, out, "json3");
    json_decref(root);
    return 0;
}

/* ---------------------------------------------------------------------------------------------------------------------
 * VTT / SRT
 * ------------------------------------------------------------------------------------------------------------------- */

/* Parses [H+:]MM:SS[.,]mmm at s; sets *used to the bytes consumed. */
static bool parse_ts(const char *s, size_t n, size_t *used, int64_t *ms)
{
    int64_t f[3];
    int nf = 0;
    size_t i = 0;
    while (nf < 3) {
        size_t d = i;
        int64_t v = 0;
        while (i < n && gw_ascii_is_digit((unsigned char)s[i]) && i - d < 9)
            v = v * 10 + (s[i++] - '0');
        if (i == d)
            return false;
        f[nf++] = v;
        if (i >= n || s[i] != ':')
            break;
        i++;
    }
    if (nf < 2 || f[nf - 1] >= 60 || (nf == 3 && f[1] >= 60))
        return false;
    int64_t frac = 0;
    if (i < n && (s[i] == '.' || s[i] == ',')) {
        size_t d = ++i;
        for (int64_t scale = 100; i < n && gw_ascii_is_digit((unsigned char)s[i]); i++, scale /= 10)
            frac += scale * (s[i] - '0');
        if (i == d)
            return false;
    }
    int64_t h = nf == 3 ? f[0] : 0, m = f[nf - 2], sec = f[nf - 1];
    *ms = ((h * 60 + m) * 60 + sec) * 1000 + frac;
    *used = i;
    return true;
}

/* "start --> end [settings]" */
static bool parse_timing(const char *s, size_t n, int64_t *start, int64_t *end)
{
    size_t i = 0, used;
    while (i < n && gw_ascii_is_blank(s[i]))
        i++;
    if (!parse_ts(s + i, n - i, &used, start))
        return false;
    for (i += used; i < n && gw_ascii_is_blank(s[i]); i++)
        ;
    if (n - i < 3 || memcmp(s + i, "-->", 3) != 0)
        return false;
    for (i += 3; i < n && gw_ascii_is_blank(s[i]); i++)
        ;
    if (!parse_ts(s + i, n - i, &used, end))
        return false;
    i += used;
    return i == n || gw_ascii_is_blank(s[i]);
}

typedef enum en_gw_cue_state_t {
    GW_CUE_HEADER,  /* VTT: the WEBVTT block, until a blank line */
    GW_CUE_BLOCK,   /* between blocks: next line starts a cue, a cue id, or a NOTE/STYLE/REGION block */
    GW_CUE_ID,      /* saw a cue id / SRT index, expecting the timing line */
    GW_CUE_PAYLOAD, /* collecting cue text lines until a blank line */
    GW_CUE_SKIP,    /* inside a NOTE/STYLE/REGION or unparseable block */
} gw_cue_state_t;

typedef struct st_gw_cue_parser_t {
    gw_cue_state_t state;
    bool vtt;
    bool saw_cue;
    gw_segvec_t segs;
    int64_t start, end;
    char **cur, **prev; /* text lines of the current and previous cue, for rolling-caption dedupe */
    size_t ncur, capcur, nprev;
} gw_cue_parser_t;

static void lines_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* Number of leading lines of cur that repeat the trailing lines of prev: YouTube's rolling auto-captions show each
 * line twice (first as the bottom line, then as the top one), which would otherwise double the transcript. */
static size_t rolling_overlap(char **prev, size_t nprev, char **cur, size_t ncur)
{
    size_t k = 0;
    if (nprev == ncur) {
        while (k < ncur && strcmp(prev[k], cur[k]) == 0)
            k++;
        if (k == ncur)
            return k; /* the same cue again */
    }
    /* Rolling captions overlap by a line or two; the cap keeps a hostile file with huge cues linear. */
    size_t most = nprev < ncur ? nprev : ncur;
    for (k = most < 16 ? most : 16; k > 0; k--) {
        size_t j = 0;
        while (j < k && strcmp(prev[nprev - k + j], cur[j]) == 0)
            j++;
        if (j == k)
            return k;
    }
    return 0;
}

static void cue_finish(gw_cue_parser_t *p)
{
    if (p->ncur == 0) {
        free(p->cur);
        p->cur = NULL;
        p->capcur = 0;
        return;
    }
    size_t k = rolling_overlap(p->prev, p->nprev, p->cur, p->ncur);
    if (k == p->ncur) {
        /* Nothing new: the earlier segment simply stays on screen longer. */
        if (p->segs.n > 0 && p->end > p->segs.v[p->segs.n - 1].end_ms)
            p->segs.v[p->segs.n - 1].end_ms = p->end;
    } else {
        gw_buf_t b = {0};
        for (size_t i = k; i < p->ncur; i++) {
            if (b.len > 0)
                gw_buf_putc(&b, ' ');
            gw_buf_puts(&b, p->cur[i]);
        }
        segvec_push(&p->segs, p->start, p->end, b.data);
    }
    lines_free(p->prev, p->nprev);
    p->prev = p->cur;
    p->nprev = p->ncur;
    p->cur = NULL;
    p->ncur = p->capcur = 0;
}

static void cue_add_line(gw_cue_parser_t *p, const char *s, size_t n)
{
    char *text = cue_line_text(s, n);
    if (text == NULL)
        return;
    if (p->ncur == p->capcur) {
        p->capcur = p->capcur == 0 ? 4 : p->capcur * 2;
        p->cur = gw_xrealloc(p->cur, p->capcur * sizeof(*p->cur));
    }
    p->cur[p->ncur++] = text;
}

static bool starts_keyword(const char *s, size_t n, const char *kw)
{
    size_t k = strlen(kw);
    return n >= k && memcmp(s, kw, k) == 0 && (n == k || gw_ascii_is_blank(s[k]));
}

/* Handles a line that begins a cue; true when it was a timing line. */
static bool cue_try_start(gw_cue_parser_t *p, const char *s, size_t n)
{
    int64_t start, end;
    if (!parse_timing(s, n, &start, &end))
        return false;
    p->start = start;
    p->end = end;
    p->saw_cue = true;
    p->state = GW_CUE_PAYLOAD;
    return true;
}

static void cue_line(gw_cue_parser_t *p, const char *s, size_t n)
{
    bool blank = n == 0;
    switch (p->state) {
    case GW_CUE_HEADER:
        if (blank)
            p->state = GW_CUE_BLOCK;
        else
            cue_try_start(p, s, n);
        break;
    case GW_CUE_BLOCK:
        if (blank)
            break;
        if (p->vtt && (starts_keyword(s, n, "NOTE") || starts_keyword(s, n, "STYLE") || starts_keyword(s, n, "REGION")))
            p->state = GW_CUE_SKIP;
        else if (!cue_try_start(p, s, n))
            p->state = GW_CUE_ID;
        break;
    case GW_CUE_ID:
        if (blank)
            p->state = GW_CUE_BLOCK;
        else if (!cue_try_start(p, s, n))
            p->state = GW_CUE_SKIP;
        break;
    case GW_CUE_PAYLOAD:
        if (blank) {
            cue_finish(p);
            p->state = GW_CUE_BLOCK;
        } else if (parse_timing(s, n, &(int64_t){0}, &(int64_t){0})) {
            cue_finish(p); /* a missing blank line between cues */
            cue_try_start(p, s, n);
        } else {
            cue_add_line(p, s, n);
        }
        break;
    case GW_CUE_SKIP:
        if (blank)
            p->state = GW_CUE_BLOCK;
        break;
    }
}

/* Feeds buf line by line (LF, CRLF or CR endings) after an optional UTF-8 BOM. */
static void cue_feed(gw_cue_parser_t *p, const char *buf, size_t len, size_t pos)
{
    while (pos < len) {
        size_t e = pos;
        while (e < len && buf[e] != '\n' && buf[e] != '\r')
            e++;
        cue_line(p, buf + pos, e - pos);
        if (e < len && buf[e] == '\r' && e + 1 < len && buf[e + 1] == '\n')
            e++;
        pos = e + 1;
    }
    if (p->state == GW_CUE_PAYLOAD)
        cue_finish(p);
}

static size_t bom_len(const char *buf, size_t len)
{
    return len >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0 ? 3 : 0;
}

static int cues_parse(const char *buf, size_t len, bool vtt, gw_transcript_t *out)
{
    gw_cue_parser_t p = {.state = vtt ? GW_CUE_HEADER : GW_CUE_BLOCK, .vtt = vtt};
    size_t pos = buf != NULL ? bom_len(buf, len) : 0;
    memset(out, 0, sizeof(*out));
    if (buf == NULL)
        return -1;
    if (vtt && (len - pos < 6 || memcmp(buf + pos, "WEBVTT", 6) != 0 ||
                (len - pos > 6 && buf[pos + 6] != ' ' && buf[pos + 6] != '\t' && buf[pos + 6] != '\n' && buf[pos + 6] != '\r')))
        return -1;
    cue_feed(&p, buf, len, pos);
    lines_free(p.prev, p.nprev);
    lines_free(p.cur, p.ncur);
    /* An SRT file without a single timing line is something else. */
    if (!vtt && !p.saw_cue) {
        segvec_free(&p.segs);
        return -1;
    }
    segvec_finish(&p.segs, out, vtt ? "vtt" : "srt");
    return 0;
}

int gw_parse_vtt(const char *buf, size_t len, gw_transcript_t *out)
{
    return cues_parse(buf, len, true, out);
}

int gw_parse_srt(const char *buf, size_t len, gw_transcript_t *out)
{
    return cues_parse(buf, len, false, out);
}
