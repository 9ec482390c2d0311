#ifndef GW_LOCAL_DOC_H
#define GW_LOCAL_DOC_H
/* The local analyzer's model of a transcript (handlers/local_analyzer.c builds its output from it): segments joined and
 * split into sentences, words and repeated two-word phrases interned as terms outside a stopword list, TF-IDF weights,
 * and each sentence's centrality (TextRank over cosine similarity, or similarity to the centroid for very long
 * transcripts, since TextRank is quadratic). Pure and deterministic. */
#include "handlers/video.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct st_gw_local_sent_t {
    char *text;
    int64_t start_ms, end_ms;
    uint32_t *term; /* sorted unique term ids */
    double *w;      /* tf-idf weight per term */
    size_t nterm;
    double norm;
    double score;
    unsigned nwords;
} gw_local_sent_t;

typedef struct st_gw_local_term_t {
    char *key;
    unsigned count, df;
    size_t first; /* order of first appearance: the tie-breaker that keeps output deterministic */
    unsigned last_sent;
    bool phrase;
} gw_local_term_t;

typedef struct st_gw_local_doc_t {
    gw_local_sent_t *s;
    size_t n, scap;
    gw_local_term_t *t;
    size_t nt, tcap;
    uint32_t *slot; /* open addressing: term index + 1, 0 = empty */
    size_t nslot;
} gw_local_doc_t;

/* A growable list of term ids (start from {0}; free(id) when done). */
typedef struct st_gw_local_ids_t {
    uint32_t *id;
    size_t n, cap;
} gw_local_ids_t;

void gw_local_ids_push(gw_local_ids_t *v, uint32_t id);

/* Builds d (overwritten) from tr (may be NULL): sentences, terms, weights and scores (centrality). Returns the number of
 * sentences; 0 when the transcript holds no text. Free d with gw_local_doc_free either way. */
size_t gw_local_doc_build(gw_local_doc_t *d, const gw_transcript_t *tr);
void gw_local_doc_free(gw_local_doc_t *d);

/* Cosine similarity of two sentences' TF-IDF vectors (0 when either has no terms). */
double gw_local_cosine(const gw_local_sent_t *a, const gw_local_sent_t *b);

/* True for English (and a few common other-language) function words the analyzer never treats as terms; word is
 * compared case-insensitively. */
bool gw_local_is_stopword(const char *word);

#endif
