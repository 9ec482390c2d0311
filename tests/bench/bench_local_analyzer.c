/* Prints how long the local analyzer takes for transcripts of growing length (synthetic sentences drawn from
 * drifting topic vocabularies), and checks each result validates. Run: build/tests/bench_local_analyzer */
#include "handlers/result.h"
#include "handlers/local_analyzer.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const words[] = {"queue",  "lease",     "worker",     "postgres", "credit",   "refund",  "ledger",  "notify",
                                    "claim",  "heartbeat", "transcript", "caption",  "chapter",  "gemini",  "upload",  "video",
                                    "frame",  "scene",     "audio",      "sample",   "timeline", "summary", "keyword", "cluster",
                                    "socket", "reactor",   "timer",      "signal",   "shutdown", "metrics", "latency", "backoff"};
#define NWORDS (sizeof(words) / sizeof(words[0]))

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void run(size_t n)
{
    gw_transcript_t t = {0};
    t.segments = calloc(n, sizeof(gw_segment_t));
    t.nsegments = n;
    unsigned seed = 42;
    for (size_t i = 0; i < n; i++) {
        char buf[256] = "The";
        size_t topic = (i / 50) % 4; /* a topic shift every 50 sentences */
        for (int k = 0; k < 10; k++) {
            seed = seed * 1103515245u + 12345u;
            strcat(buf, k % 3 == 0 ? " and the " : " ");
            strcat(buf, words[(topic * 8 + (seed >> 16) % 12) % NWORDS]);
        }
        strcat(buf, ".");
        t.segments[i] = (gw_segment_t){(int64_t)i * 4000, (int64_t)(i + 1) * 4000, strdup(buf)};
    }
    gw_video_meta_t m = {.title = "bench", .duration = n * 4.0};
    gw_local_input_t in = {&m, &t, false, NULL, 0};
    char err[256];
    double t0 = now_ms();
    json_t *r = gw_local_analyze(&in, err, sizeof(err));
    double ms = now_ms() - t0;
    int ok = gw_result_validate(r, m.duration, false, err, sizeof(err)) == 0;
    printf("%7zu sentences (%5.1f h of speech): %8.1f ms, %zu timeline entries, valid=%d\n", n, n * 4.0 / 3600, ms,
           json_array_size(json_object_get(r, "timeline")), ok);
    json_decref(r);
    m.title = NULL;
    gw_transcript_free(&t);
}

int main(void)
{
    size_t sizes[] = {100, 300, 600, 601, 1500, 5000, 20000};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
        run(sizes[i]);
    return 0;
}
