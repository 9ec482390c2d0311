/* The transcript as the local analyzer sees it: sentences, interned terms with TF-IDF weights, and each sentence's
 * centrality. */
#include "handlers/local_doc.h"
#include "reactor/text.h"
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_SENTENCE_WORDS 40  /* unpunctuated captions are cut into pieces this long */
#define MAX_SENTENCE_BYTES 600 /* likewise for scripts written without blanks */
#define TEXTRANK_MAX                                                                                                               \
    600 /* above this many sentences (~40 min of speech) centrality is measured against the centroid:                              \
         * TextRank is O(n^2) and runs on the loop thread */
#define TEXTRANK_ITERS 60
#define DAMPING 0.85

/* ---- stopwords ---- */

static const char *const stopwords[] = {
    "a", "about", "above", "actually", "after", "again", "against", "all", "almost", "also", "although", "always", "am", "among",
    "an", "and", "another", "any", "anyone", "anything", "are", "aren't", "around", "as", "at", "back", "be", "because", "been",
    "before", "being", "below", "between", "both", "but", "by", "came", "can", "can't", "cannot", "come", "comes", "could",
    "couldn't", "did", "didn't", "do", "does", "doesn't", "doing", "don't", "done", "down", "during", "each", "either", "else",
    "enough", "even", "ever", "every", "few", "first", "for", "from", "further", "get", "gets", "getting", "give", "given", "go",
    "goes", "going", "gone", "got", "had", "has", "hasn't", "have", "haven't", "having", "he", "her", "here", "hers", "herself",
    "him", "himself", "his", "how", "however", "i", "i'm", "i've", "if", "in", "into", "is", "isn't", "it", "it's", "its", "itself",
    "just", "keep", "kind", "know", "last", "least", "less", "let", "let's", "like", "look", "lot", "lots", "made", "make", "makes",
    "many", "may", "maybe", "me", "might", "more", "most", "much", "must", "my", "myself", "need", "needs", "never", "new", "next",
    "no", "nor", "not", "now", "of", "off", "often", "oh", "ok", "okay", "on", "once", "one", "only", "or", "other", "others",
    "our", "ours", "ourselves", "out", "over", "own", "part", "per", "put", "quite", "rather", "really", "right", "said", "same",
    "say", "says", "second", "see", "seen", "several", "shall", "she", "should", "shouldn't", "show", "shows", "since", "so",
    "some", "something", "still", "such", "sure", "take", "takes", "than", "that", "that's", "the", "their", "theirs", "them",
    "themselves", "then", "there", "there's", "these", "they", "they're", "thing", "things", "think", "third", "this", "those",
    "though", "three", "through", "thus", "to", "too", "two", "under", "until", "up", "upon", "us", "use", "used", "uses", "using",
    "very", "via", "want", "was", "wasn't", "way", "we", "we're", "we've", "well", "went", "were", "weren't", "what", "what's",
    "when", "where", "whether", "which", "while", "who", "whole", "whom", "whose", "why", "will", "with", "within", "without",
    "won't", "would", "wouldn't", "yeah", "yes", "yet", "you", "you're", "you've", "your", "yours", "yourself", "yourselves",
    /* a few frequent function words of other languages, so foreign transcripts do not yield "der, und, les" */
    "das", "dem", "den", "der", "des", "die", "ein", "eine", "und", "ist", "nicht", "mit", "les", "une", "est", "pas", "pour",
    "que", "qui", "dans", "por", "para", "con", "los", "las", "una", "el", "la", "le", "il", "di", "che", "non", "und"};

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

bool gw_local_is_stopword(const char *word)
{
    static const char **sorted;
    static size_t n;
    char low[32];
    size_t len = strlen(word);
    if (len >= sizeof(low))
        return false;
    for (size_t i = 0; i <= len; i++)
        low[i] = (char)tolower((unsigned char)word[i]);
    if (sorted == NULL) { /* built once; the table is constant so a race would only build it twice */
        size_t cnt = sizeof(stopwords) / sizeof(stopwords[0]);
        const char **s = gw_xmalloc(cnt * sizeof(*s));
        memcpy(s, stopwords, cnt * sizeof(*s));
        qsort(s, cnt, sizeof(*s), cmp_str);
        n = cnt;
        sorted = s;
    }
    const char *key = low;
    return bsearch(&key, sorted, n, sizeof(*sorted), cmp_str) != NULL;
}

/* ---- terms ---- */

static uint32_t hash_str(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s != '\0'; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

static void grow_slots(gw_local_doc_t *d)
{
    free(d->slot);
    d->nslot = d->nslot ? d->nslot * 2 : 1024;
    d->slot = calloc(d->nslot, sizeof(uint32_t));
    if (d->slot == NULL)
        abort();
    for (size_t i = 0; i < d->nt; i++) {
        size_t j = hash_str(d->t[i].key) & (d->nslot - 1);
        while (d->slot[j] != 0)
            j = (j + 1) & (d->nslot - 1);
        d->slot[j] = (uint32_t)i + 1;
    }
}

static uint32_t intern(gw_local_doc_t *d, const char *key, bool phrase)
{
    if ((d->nt + 1) * 2 > d->nslot)
        grow_slots(d);
    size_t j = hash_str(key) & (d->nslot - 1);
    for (; d->slot[j] != 0; j = (j + 1) & (d->nslot - 1))
        if (strcmp(d->t[d->slot[j] - 1].key, key) == 0)
            return d->slot[j] - 1;
    if (d->nt == d->tcap) {
        d->tcap = d->tcap ? d->tcap * 2 : 256;
        d->t = gw_xrealloc(d->t, d->tcap * sizeof(gw_local_term_t));
    }
    gw_local_term_t *t = &d->t[d->nt];
    memset(t, 0, sizeof(*t));
    t->key = gw_xstrdup(key);
    t->first = d->nt;
    t->last_sent = UINT32_MAX;
    t->phrase = phrase;
    d->slot[j] = (uint32_t)d->nt + 1;
    return (uint32_t)d->nt++;
}

/* Lowercases a token, drops a possessive "'s" and a plural 's' so "workers" and "worker" meet. Returns false for
 * tokens that are no terms: short, numeric, stopwords. */
static bool normalize_token(const char *p, size_t len, char *out, size_t cap)
{
    if (len < 3 || len >= cap)
        return false;
    bool digits = true;
    for (size_t i = 0; i < len; i++) {
        out[i] = (char)tolower((unsigned char)p[i]);
        if (!isdigit((unsigned char)p[i]))
            digits = false;
    }
    out[len] = '\0';
    if (digits || gw_local_is_stopword(out))
        return false;
    if (len > 2 && out[len - 2] == '\'' && out[len - 1] == 's')
        out[len -= 2] = '\0';
    if (len > 4 && out[len - 1] == 's' && strchr("sui", out[len - 2]) == NULL)
        out[--len] = '\0';
    return len >= 3 && !gw_local_is_stopword(out) && strchr(out, '\'') == NULL;
}

static bool word_byte(unsigned char c)
{
    return isalnum(c) || c >= 0x80 || c == '\'';
}

void gw_local_ids_push(gw_local_ids_t *v, uint32_t id)
{
    if (v->n == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 16;
        v->id = gw_xrealloc(v->id, v->cap * sizeof(uint32_t));
    }
    v->id[v->n++] = id;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* Counts one sentence's terms (and its two-word phrases) and stores its sorted term list with raw counts in w. */
static void index_sentence(gw_local_doc_t *d, size_t si)
{
    gw_local_sent_t *s = &d->s[si];
    gw_local_ids_t v = {0};
    char tok[64], prev[64] = "", key[130];
    const unsigned char *p = (const unsigned char *)s->text;
    while (*p != '\0') {
        while (*p != '\0' && !word_byte(*p))
            p++;
        const unsigned char *b = p;
        while (*p != '\0' && word_byte(*p))
            p++;
        while (b < p && *b == '\'')
            b++;
        if (b == p)
            continue;
        if (!normalize_token((const char *)b, (size_t)(p - b), tok, sizeof(tok))) {
            prev[0] = '\0';
            continue;
        }
        uint32_t id = intern(d, tok, false);
        gw_local_ids_push(&v, id);
        d->t[id].count++;
        if (prev[0] != '\0') {
            snprintf(key, sizeof(key), "%s %s", prev, tok);
            uint32_t pid = intern(d, key, true); /* may move d->t */
            d->t[pid].count++;
        }
        snprintf(prev, sizeof(prev), "%s", tok);
    }
    if (v.n > 1)
        qsort(v.id, v.n, sizeof(uint32_t), cmp_u32);
    s->term = gw_xmalloc((v.n ? v.n : 1) * sizeof(uint32_t));
    s->w = gw_xmalloc((v.n ? v.n : 1) * sizeof(double));
    for (size_t i = 0; i < v.n; i++) {
        if (s->nterm > 0 && s->term[s->nterm - 1] == v.id[i]) {
            s->w[s->nterm - 1] += 1;
            continue;
        }
        s->term[s->nterm] = v.id[i];
        s->w[s->nterm++] = 1;
        d->t[v.id[i]].df++;
    }
    free(v.id);
}

static void weigh(gw_local_doc_t *d)
{
    for (size_t i = 0; i < d->n; i++) {
        gw_local_sent_t *s = &d->s[i];
        double sum = 0;
        for (size_t k = 0; k < s->nterm; k++) {
            s->w[k] *= log((double)(d->n + 1) / (d->t[s->term[k]].df + 0.5));
            sum += s->w[k] * s->w[k];
        }
        s->norm = sqrt(sum);
    }
}

double gw_local_cosine(const gw_local_sent_t *a, const gw_local_sent_t *b)
{
    double dot = 0;
    size_t i = 0, j = 0;
    if (a->norm == 0 || b->norm == 0)
        return 0;
    while (i < a->nterm && j < b->nterm) {
        if (a->term[i] == b->term[j])
            dot += a->w[i++] * b->w[j++];
        else if (a->term[i] < b->term[j])
            i++;
        else
            j++;
    }
    return dot / (a->norm * b->norm);
}

/* ---- sentences ---- */

typedef struct st_sbuf_t {
    gw_buf_t text;
    unsigned words;
    int64_t start_ms, end_ms;
} sbuf_t;

static void sbuf_word(sbuf_t *b, const char *w, size_t n)
{
    if (b->text.len > 0)
        gw_buf_putc(&b->text, ' ');
    gw_buf_append(&b->text, w, n);
    b->words++;
}

static void flush_sentence(gw_local_doc_t *d, sbuf_t *b)
{
    if (b->words == 0)
        return;
    if (d->n == d->scap) {
        d->scap = d->scap ? d->scap * 2 : 64;
        d->s = gw_xrealloc(d->s, d->scap * sizeof(gw_local_sent_t));
    }
    gw_local_sent_t *s = &d->s[d->n++];
    memset(s, 0, sizeof(*s));
    s->text = gw_xstrndup(b->text.data, b->text.len);
    s->start_ms = b->start_ms;
    s->end_ms = b->end_ms;
    s->nwords = b->words;
    gw_buf_clear(&b->text);
    b->words = 0;
}

/* A word ending a sentence: terminal punctuation (closing quotes/brackets allowed after it), not an abbreviation. */
static bool ends_sentence(const char *w, size_t n)
{
    static const char *const abbrev[] = {"e.g.", "i.e.", "mr.", "mrs.", "ms.", "dr.", "vs.", "etc.", "approx.", "no.", "st."};
    while (n > 0 && strchr("\"')]", w[n - 1]) != NULL)
        n--;
    if (n >= 3 && (memcmp(w + n - 3, "\xe3\x80\x82", 3) == 0 || memcmp(w + n - 3, "\xef\xbc\x81", 3) == 0 ||
                   memcmp(w + n - 3, "\xef\xbc\x9f", 3) == 0)) /* full-width 。！？ */
        return true;
    if (n == 0 || strchr(".!?", w[n - 1]) == NULL)
        return false;
    for (size_t i = 0; i < sizeof(abbrev) / sizeof(abbrev[0]); i++)
        if (n == strlen(abbrev[i]) && strncasecmp(w, abbrev[i], n) == 0)
            return false;
    return true;
}

/* Words of one segment; a word's time is interpolated by its position within the segment. */
static void split_segment(gw_local_doc_t *d, sbuf_t *b, const gw_segment_t *seg)
{
    const char *p = seg->text;
    size_t nwords = 0, k = 0;
    for (const char *q = p; *q != '\0';) {
        q += strspn(q, " \t");
        size_t n = strcspn(q, " \t");
        nwords += n > 0;
        q += n;
    }
    int64_t span = seg->end_ms > seg->start_ms ? seg->end_ms - seg->start_ms : 0;
    while (*p != '\0') {
        p += strspn(p, " \t");
        size_t n = strcspn(p, " \t");
        if (n == 0)
            break;
        int64_t t0 = seg->start_ms + (nwords ? span * (int64_t)k / (int64_t)nwords : 0);
        if (b->words == 0)
            b->start_ms = t0;
        sbuf_word(b, p, n);
        b->end_ms = seg->start_ms + (nwords ? span * (int64_t)(k + 1) / (int64_t)nwords : 0);
        if ((ends_sentence(p, n) && b->words >= 3) || b->words >= MAX_SENTENCE_WORDS || b->text.len >= MAX_SENTENCE_BYTES)
            flush_sentence(d, b);
        p += n;
        k++;
    }
}

static void build_sentences(gw_local_doc_t *d, const gw_transcript_t *tr)
{
    sbuf_t b = {0};
    for (size_t i = 0; i < tr->nsegments; i++)
        if (tr->segments[i].text != NULL)
            split_segment(d, &b, &tr->segments[i]);
    flush_sentence(d, &b);
    gw_buf_free(&b.text);
}

void gw_local_doc_free(gw_local_doc_t *d)
{
    for (size_t i = 0; i < d->n; i++) {
        free(d->s[i].text);
        free(d->s[i].term);
        free(d->s[i].w);
    }
    for (size_t i = 0; i < d->nt; i++)
        free(d->t[i].key);
    free(d->s);
    free(d->t);
    free(d->slot);
}

/* ---- centrality ---- */

static void textrank(gw_local_doc_t *d)
{
    size_t n = d->n;
    float *sim = gw_xmalloc(n * n * sizeof(float));
    double *deg = calloc(n, sizeof(double)), *r = gw_xmalloc(n * sizeof(double)), *nr = gw_xmalloc(n * sizeof(double));
    if (deg == NULL)
        abort();
    for (size_t i = 0; i < n; i++) {
        sim[i * n + i] = 0;
        for (size_t j = i + 1; j < n; j++) {
            float c = (float)gw_local_cosine(&d->s[i], &d->s[j]);
            sim[i * n + j] = sim[j * n + i] = c;
            deg[i] += c;
            deg[j] += c;
        }
        r[i] = 1.0 / (double)n;
    }
    for (int it = 0; it < TEXTRANK_ITERS; it++) {
        for (size_t i = 0; i < n; i++) {
            double acc = 0;
            for (size_t j = 0; j < n; j++)
                if (deg[j] > 0)
                    acc += sim[j * n + i] / deg[j] * r[j];
            nr[i] = (1 - DAMPING) / (double)n + DAMPING * acc;
        }
        double change = 0;
        for (size_t i = 0; i < n; i++)
            change += fabs(nr[i] - r[i]);
        memcpy(r, nr, n * sizeof(double));
        if (change < 1e-9)
            break;
    }
    for (size_t i = 0; i < n; i++)
        d->s[i].score = r[i] * (double)n;
    free(sim);
    free(deg);
    free(r);
    free(nr);
}

/* For very long transcripts: similarity to the document's centroid (O(n) instead of O(n^2)). */
static void centroid_rank(gw_local_doc_t *d)
{
    double *c = calloc(d->nt ? d->nt : 1, sizeof(double)), norm = 0;
    if (c == NULL)
        abort();
    for (size_t i = 0; i < d->n; i++)
        for (size_t k = 0; k < d->s[i].nterm; k++)
            c[d->s[i].term[k]] += d->s[i].w[k];
    for (size_t t = 0; t < d->nt; t++)
        norm += c[t] * c[t];
    norm = sqrt(norm);
    for (size_t i = 0; i < d->n; i++) {
        double dot = 0;
        for (size_t k = 0; k < d->s[i].nterm; k++)
            dot += c[d->s[i].term[k]] * d->s[i].w[k];
        d->s[i].score = norm > 0 && d->s[i].norm > 0 ? dot / (norm * d->s[i].norm) : 0;
    }
    free(c);
}

size_t gw_local_doc_build(gw_local_doc_t *d, const gw_transcript_t *tr)
{
    memset(d, 0, sizeof(*d));
    if (tr != NULL)
        build_sentences(d, tr);
    if (d->n == 0)
        return 0;
    for (size_t i = 0; i < d->n; i++)
        index_sentence(d, i);
    weigh(d);
    if (d->n <= TEXTRANK_MAX)
        textrank(d);
    else
        centroid_rank(d);
    return d->n;
}
