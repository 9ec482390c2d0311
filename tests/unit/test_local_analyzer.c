#include "check.h"
#include "handlers/result.h"
#include "handlers/local_analyzer.h"
#include "handlers/local_doc.h"
#include "handlers/ytdlp.h"
#include <ctype.h>
#include <stdlib.h>

/* Three topics, five sentences each, one sentence per 6 s cue: bread baking, then orbits, then jazz. */
static const char *const topics[] = {
    "Good bread starts with flour, water, salt and a lively sourdough starter.",
    "The starter ferments the dough and gives the bread its sour taste.",
    "Knead the dough until the gluten stretches thin without tearing.",
    "Let the dough rise overnight so the fermentation develops flavour.",
    "Bake the bread in a hot oven with steam for a crisp crust.",
    "A satellite in orbit is always falling toward the planet it circles.",
    "Its sideways speed carries the satellite past the curve of the planet.",
    "A lower orbit needs a higher speed and a shorter orbital period.",
    "Engines change the orbit by burning at the lowest or highest point.",
    "Geostationary satellites match the rotation of the planet exactly.",
    "Jazz grew in New Orleans from blues, ragtime and brass band music.",
    "Improvisation lets each jazz musician reshape the melody on stage.",
    "Swing bands made jazz the dance music of the nineteen thirties.",
    "Bebop musicians played faster jazz with complex harmony.",
    "Modern jazz still mixes written melody with free improvisation.",
};
#define NTOPIC (sizeof(topics) / sizeof(topics[0]))

static void make_transcript(gw_transcript_t *t, const char *const *lines, size_t n, int64_t step_ms)
{
    memset(t, 0, sizeof(*t));
    t->segments = calloc(n, sizeof(gw_segment_t));
    for (size_t i = 0; i < n; i++) {
        t->segments[i].start_ms = (int64_t)i * step_ms;
        t->segments[i].end_ms = (int64_t)(i + 1) * step_ms;
        t->segments[i].text = strdup(lines[i]);
    }
    t->nsegments = n;
}

static bool from_transcript(const char *s, const char *const *lines, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(s, lines[i]) == 0)
            return true;
    return false;
}

/* Timestamps parse, never go backwards, stay within the duration. */
static void check_timed(json_t *arr, double duration)
{
    size_t i;
    json_t *e;
    int last = -1;
    json_array_foreach(arr, i, e)
    {
        int s = -1;
        CHECK_INT(gw_parse_timestamp(json_string_value(json_object_get(e, "timestamp")), &s), 0);
        CHECK(s >= last);
        CHECK(duration < 0 || s <= duration);
        last = s;
    }
}

static void check_keywords(json_t *kw)
{
    size_t i;
    json_t *k;
    CHECK(json_array_size(kw) > 0);
    json_array_foreach(kw, i, k)
    {
        char word[128];
        const char *p = json_string_value(k);
        CHECK(p != NULL && *p != '\0');
        while (p != NULL && *p != '\0') { /* every word of a phrase is a non-stopword */
            size_t n = strcspn(p, " ");
            snprintf(word, sizeof(word), "%.*s", (int)n, p);
            CHECK(!gw_local_is_stopword(word));
            if (gw_local_is_stopword(word))
                fprintf(stderr, "  stopword keyword: %s\n", word);
            p += n;
            p += strspn(p, " ");
        }
    }
}

static void test_topics(void)
{
    gw_transcript_t t;
    gw_video_meta_t m = {0};
    make_transcript(&t, topics, NTOPIC, 6000);
    m.title = "Three topics";
    m.duration = 92;
    gw_local_input_t in = {&m, &t, false, NULL, 0};
    char err[256] = "";
    json_t *r = gw_local_analyze(&in, err, sizeof(err));
    CHECK(r != NULL);
    if (r == NULL)
        return;
    unsigned repairs = 99;
    CHECK_INT(gw_result_validate_ex(r, m.duration, false, err, sizeof(err), &repairs), 0);
    CHECK_INT(repairs, 0);
    CHECK_STR(json_string_value(json_object_get(r, "title")), "Three topics");
    CHECK(json_object_get(r, "visualAudit") == NULL);

    /* summary: whole transcript sentences, joined */
    const char *sum = json_string_value(json_object_get(r, "summary"));
    CHECK(sum != NULL && strlen(sum) > 20);
    size_t covered = 0, nsum = 0;
    for (size_t i = 0; sum != NULL && i < NTOPIC; i++)
        if (strstr(sum, topics[i]) != NULL) {
            covered += strlen(topics[i]) + (nsum ? 1 : 0);
            nsum++;
        }
    CHECK(sum != NULL && covered == strlen(sum));
    CHECK(nsum >= 2);

    /* takeaways: distinct transcript sentences not repeating the summary */
    json_t *kt = json_object_get(r, "keyTakeaways"), *e;
    size_t i;
    CHECK(json_array_size(kt) >= 3);
    json_array_foreach(kt, i, e)
    {
        CHECK(from_transcript(json_string_value(e), topics, NTOPIC));
        CHECK(strstr(sum, json_string_value(e)) == NULL);
        for (size_t j = 0; j < i; j++)
            CHECK(strcmp(json_string_value(e), json_string_value(json_array_get(kt, j))) != 0);
    }

    /* timeline: topic shifts found at the true boundaries (30 s and 60 s, one cue of slack) */
    json_t *tl = json_object_get(r, "timeline");
    check_timed(tl, m.duration);
    CHECK(json_array_size(tl) >= 3);
    bool at30 = false, at60 = false;
    json_array_foreach(tl, i, e)
    {
        int s;
        gw_parse_timestamp(json_string_value(json_object_get(e, "timestamp")), &s);
        at30 |= s >= 24 && s <= 36;
        at60 |= s >= 54 && s <= 66;
        CHECK(from_transcript(json_string_value(json_object_get(e, "description")), topics, NTOPIC));
    }
    CHECK(at30);
    CHECK(at60);
    if (!at30 || !at60) {
        char *dump = json_dumps(tl, JSON_INDENT(1));
        fprintf(stderr, "%s\n", dump);
        free(dump);
    }
    CHECK_STR(json_string_value(json_object_get(json_array_get(tl, 0), "timestamp")), "00:00");

    /* keywords: no stopwords, and the topics' own words rank */
    json_t *kw = json_object_get(r, "keywords");
    check_keywords(kw);
    char *kws = json_dumps(kw, JSON_COMPACT);
    CHECK(strstr(kws, "jazz") != NULL);
    CHECK(strstr(kws, "dough") != NULL || strstr(kws, "bread") != NULL);
    CHECK(strstr(kws, "orbit") != NULL || strstr(kws, "satellite") != NULL);
    free(kws);

    /* deterministic */
    json_t *r2 = gw_local_analyze(&in, err, sizeof(err));
    gw_result_validate(r2, m.duration, false, err, sizeof(err));
    char *a = json_dumps(r, JSON_SORT_KEYS | JSON_COMPACT), *b = json_dumps(r2, JSON_SORT_KEYS | JSON_COMPACT);
    CHECK_STR(a, b);
    free(a);
    free(b);
    json_decref(r);
    json_decref(r2);
    m.title = NULL;
    gw_transcript_free(&t);
}

static void test_chapters(void)
{
    gw_transcript_t t;
    gw_chapter_t ch[3] = {{60, 90, "Jazz"}, {0, 30, "Bread"}, {30, 60, "Orbits"}}; /* out of order on purpose */
    gw_video_meta_t m = {.title = "Chaptered", .duration = 90, .chapters = ch, .nchapters = 3};
    make_transcript(&t, topics, NTOPIC, 6000);
    gw_local_input_t in = {&m, &t, false, NULL, 0};
    char err[256];
    json_t *r = gw_local_analyze(&in, err, sizeof(err));
    CHECK_INT(gw_result_validate(r, m.duration, false, err, sizeof(err)), 0);
    json_t *tl = json_object_get(r, "timeline");
    CHECK_INT(json_array_size(tl), 3);
    const char *want_t[] = {"00:00", "00:30", "01:00"}, *want_d[] = {"Bread", "Orbits", "Jazz"};
    for (size_t i = 0; i < 3 && i < json_array_size(tl); i++) {
        json_t *e = json_array_get(tl, i);
        CHECK_STR(json_string_value(json_object_get(e, "timestamp")), want_t[i]);
        CHECK_STR(json_string_value(json_object_get(e, "description")), want_d[i]);
        /* the detail sentence comes from inside the chapter */
        const char *d0 = json_string_value(json_array_get(json_object_get(e, "details"), 0));
        bool inside = false;
        for (size_t k = i * 5; k < i * 5 + 5; k++)
            inside |= d0 != NULL && strcmp(d0, topics[k]) == 0;
        CHECK(inside);
    }
    json_decref(r);
    gw_transcript_free(&t);
}

/* Rolling auto-captions: no punctuation at all, timing beyond the stated duration. */
static void test_unpunctuated(void)
{
    static const char *const lines[] = {"so today we look at how the queue claims jobs from postgres",
                                        "every worker asks for jobs with skip locked so two workers",
                                        "never take the same job and the lease keeps the claim alive",
                                        "when a worker dies the lease expires and another worker takes",
                                        "the job again the credits are refunded when a job finally fails",
                                        "and the refund happens in the same transaction as the status",
                                        "change so credits are never lost and never counted twice",
                                        "that is the whole queue in a few sentences thanks for watching"};
    gw_transcript_t t;
    make_transcript(&t, lines, 8, 4000);
    gw_video_meta_t m = {.title = "Queue", .duration = 25}; /* shorter than the captions' 32 s */
    gw_local_input_t in = {&m, &t, false, NULL, 0};
    char err[256];
    json_t *r = gw_local_analyze(&in, err, sizeof(err));
    CHECK(r != NULL);
    unsigned repairs = 99;
    CHECK_INT(gw_result_validate_ex(r, m.duration, false, err, sizeof(err), &repairs), 0);
    CHECK_INT(repairs, 0);
    check_timed(json_object_get(r, "timeline"), m.duration);
    check_keywords(json_object_get(r, "keywords"));
    json_t *kt = json_object_get(r, "keyTakeaways"), *e;
    size_t i;
    json_array_foreach(kt, i, e)
    {
        size_t words = 1;
        for (const char *p = json_string_value(e); *p; p++)
            words += *p == ' ';
        CHECK(words <= 40);
    }
    json_decref(r);
    gw_transcript_free(&t);
}

static void test_deep_and_scenes(void)
{
    const char *err_text = "Input #0, mov,mp4,m4a,3gp,3g2,mj2, from 'x.mp4':\n"
                           "[Parsed_showinfo_1 @ 0x55d1] n:   0 pts:  51200 pts_time:4       duration:512 pos: 1234 fmt:yuv420p\n"
                           "[Parsed_showinfo_1 @ 0x55d1] n:   1 pts: 128000 pts_time:10.0    duration:512\r\n"
                           "frame=  300 fps=0.0 q=-0.0 size=N/A time=00:00:12.00 bitrate=N/A speed= 600x\r"
                           "[Parsed_showinfo_1 @ 0x55d1] n:   2 pts: 130560 pts_time:10.2    duration:512\n"
                           "[Parsed_showinfo_1 @ 0x55d1] n:   3 pts:  51200 pts_time:4       duration:512\n"
                           "[mp4 @ 0x1] something pts_time:99 not showinfo\n"
                           "[Parsed_showinfo_1 @ 0x55d1] n:   4 pts: 1 pts_time:200.5\n"
                           "[Parsed_showinfo_1 @ 0x55d1] n:   5 pts: 1 pts_time:nan\n";
    double *times = NULL;
    size_t n = gw_local_parse_scenes(err_text, &times);
    CHECK_INT(n, 4);
    if (n == 4) {
        CHECK(times[0] == 4 && times[1] == 10.0 && times[2] == 10.2 && times[3] == 200.5);
    }
    double *none = NULL;
    CHECK_INT(gw_local_parse_scenes("no scenes here\n", &none), 0);
    CHECK(none == NULL);
    char **argv = gw_local_argv_scenes(NULL, "/m/a.mp4", NULL);
    int vf = 0;
    while (argv[vf] != NULL && strcmp(argv[vf], "-vf") != 0)
        vf++;
    CHECK_STR(argv[vf] ? argv[vf + 1] : NULL, "select='gt(scene,0.3)',showinfo");
    CHECK_STR(argv[6], "/m/a.mp4");
    gw_argv_free(argv);

    gw_transcript_t t;
    gw_video_meta_t m = {.title = "Deep", .duration = 90};
    make_transcript(&t, topics, NTOPIC, 6000);
    gw_local_input_t in = {&m, &t, true, times, n};
    char errb[256];
    json_t *r = gw_local_analyze(&in, errb, sizeof(errb));
    unsigned repairs = 99;
    CHECK_INT(gw_result_validate_ex(r, m.duration, true, errb, sizeof(errb), &repairs), 0);
    CHECK_INT(repairs, 0);
    json_t *va = json_object_get(r, "visualAudit");
    CHECK_INT(json_array_size(va), 2); /* 4 s, 10 s (10.2 s is the same burst, 200.5 s past the end) */
    check_timed(va, m.duration);
    CHECK_STR(json_string_value(json_object_get(json_array_get(va, 1), "timestamp")), "00:10");
    CHECK_STR(json_string_value(json_object_get(json_array_get(va, 0), "type")), "Scene change");
    const char *detail = json_string_value(json_object_get(json_array_get(va, 1), "detail"));
    CHECK(detail != NULL && strstr(detail, topics[1]) != NULL); /* what was being said at 10 s */
    json_decref(r);
    /* deep without any scene: an empty list, still valid */
    in.nscene_times = 0;
    r = gw_local_analyze(&in, errb, sizeof(errb));
    CHECK_INT(json_array_size(json_object_get(r, "visualAudit")), 0);
    CHECK_INT(gw_result_validate(r, m.duration, true, errb, sizeof(errb)), 0);
    json_decref(r);
    free(times);
    gw_transcript_free(&t);
}

static void test_edges(void)
{
    gw_transcript_t t = {0};
    gw_video_meta_t m = {.title = "x", .duration = -1};
    gw_local_input_t in = {&m, &t, false, NULL, 0};
    char err[128] = "";
    CHECK(gw_local_analyze(&in, err, sizeof(err)) == NULL);
    CHECK(err[0] != '\0');
    static const char *const one[] = {"Just one short line."};
    make_transcript(&t, one, 1, 3000);
    json_t *r = gw_local_analyze(&in, err, sizeof(err));
    CHECK_INT(gw_result_validate(r, -1, false, err, sizeof(err)), 0);
    CHECK_STR(json_string_value(json_object_get(r, "summary")), "Just one short line.");
    json_decref(r);
    gw_transcript_free(&t);

    CHECK(gw_local_is_stopword("The"));
    CHECK(gw_local_is_stopword("don't"));
    CHECK(!gw_local_is_stopword("satellite"));
    CHECK(gw_analyzer_is_local("local", "key"));
    CHECK(!gw_analyzer_is_local("gemini", NULL));
    CHECK(gw_analyzer_is_local("auto", NULL));
    CHECK(gw_analyzer_is_local("auto", ""));
    CHECK(!gw_analyzer_is_local("auto", "AIza-something"));
}

/* Scripts without blanks and non-ASCII words: valid UTF-8 out, descriptions never empty. */
static void test_unicode(void)
{
    static const char *const lines[] = {
        "\xe4\xbb\x8a\xe6\x97\xa5\xe3\x81\xaf\xe3\x82\xad\xe3\x83\xa5\xe3\x83\xbc\xe3\x81\xae\xe8\xa9\xb1\xe3\x81\xa7\xe3\x81\x99"
        "\xe3\x80\x82",
        "Die Warteschlange verteilt Aufträge an mehrere Arbeiter, und jeder Arbeiter hält eine Sperre.",
        "Die Sperre läuft ab, wenn ein Arbeiter ausfällt, und ein anderer Arbeiter übernimmt den Auftrag.",
        "Überweisungen und Gutschriften werden in derselben Transaktion gebucht."};
    char longline[2048] = "";
    for (int i = 0; i < 120; i++)
        strcat(longline, "\xe3\x82\xad\xe3\x83\xa5\xe3\x83\xbc"); /* 360 characters, no blank, no stop */
    const char *all[5] = {lines[0], lines[1], lines[2], lines[3], longline};
    gw_transcript_t t;
    make_transcript(&t, all, 5, 5000);
    gw_video_meta_t m = {.title = "Unicode", .duration = 30};
    gw_local_input_t in = {&m, &t, false, NULL, 0};
    char err[256];
    json_t *r = gw_local_analyze(&in, err, sizeof(err));
    CHECK_INT(gw_result_validate(r, m.duration, false, err, sizeof(err)), 0);
    char *dump = json_dumps(r, 0); /* jansson refuses invalid UTF-8, so a dump proves it valid */
    CHECK(dump != NULL);
    free(dump);
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(r, "timeline"), i, e)
    {
        const char *d = json_string_value(json_object_get(e, "description"));
        CHECK(d != NULL && strlen(d) > 3);
    }
    check_keywords(json_object_get(r, "keywords"));
    char *kw = json_dumps(json_object_get(r, "keywords"), 0);
    CHECK(kw != NULL && strstr(kw, "arbeiter") != NULL);
    free(kw);
    json_decref(r);
    gw_transcript_free(&t);
}

/* A long transcript takes the centroid path; output stays valid and bounded. */
static void test_long(void)
{
    enum { N = 3000 };
    char **lines = calloc(N, sizeof(char *));
    for (size_t i = 0; i < N; i++) {
        const char *base = topics[(i / 40) % NTOPIC];
        size_t len = strlen(base) + 96;
        lines[i] = malloc(len);
        snprintf(lines[i], len, "Part %zu: %s Alpha%zu beta%zu gamma%zu delta%zu.", i, base, i, i, i,
                 i); /* thousands of distinct terms: tables grow */
    }
    gw_transcript_t t;
    make_transcript(&t, (const char *const *)lines, N, 1500);
    gw_video_meta_t m = {.title = "Long", .duration = N * 1.5};
    gw_local_input_t in = {&m, &t, false, NULL, 0};
    char err[256];
    json_t *r = gw_local_analyze(&in, err, sizeof(err));
    CHECK_INT(gw_result_validate(r, m.duration, false, err, sizeof(err)), 0);
    check_timed(json_object_get(r, "timeline"), m.duration);
    CHECK(json_array_size(json_object_get(r, "timeline")) >= 3);
    CHECK(json_array_size(json_object_get(r, "timeline")) <= 12);
    check_keywords(json_object_get(r, "keywords"));
    json_decref(r);
    gw_transcript_free(&t);
    for (size_t i = 0; i < N; i++)
        free(lines[i]);
    free(lines);
}

int main(void)
{
    test_topics();
    test_chapters();
    test_unpunctuated();
    test_deep_and_scenes();
    test_edges();
    test_unicode();
    test_long();
    return check_report();
}
