#include "handlers/history.h"
#include <stdbool.h>
#include <string.h>

static const char *const outcome_names[GW_HISTORY_NOUTCOMES] = {"completed", "failed", "retried", "cancelled"};

gw_history_t *gw_history(void)
{
    static gw_history_t h;
    return &h;
}

/* The bucket of now_s's minute, emptied first when it last held an older minute. */
static gw_history_bucket_t *current(gw_history_t *h, int64_t now_s)
{
    int64_t minute = now_s / 60;
    gw_history_bucket_t *b = &h->b[minute % GW_HISTORY_MINUTES];
    if (b->minute != minute) {
        memset(b, 0, sizeof(*b));
        b->minute = minute;
        b->queue_depth = -1;
    }
    return b;
}

void gw_history_job(gw_history_t *h, int64_t now_s, gw_history_outcome_t outcome)
{
    if (now_s > 0 && outcome < GW_HISTORY_NOUTCOMES)
        current(h, now_s)->jobs[outcome]++;
}

void gw_history_job_named(gw_history_t *h, int64_t now_s, const char *outcome)
{
    for (int i = 0; outcome != NULL && i < GW_HISTORY_NOUTCOMES; i++)
        if (strcmp(outcome, outcome_names[i]) == 0)
            gw_history_job(h, now_s, (gw_history_outcome_t)i);
}

void gw_history_queue_depth(gw_history_t *h, int64_t now_s, int64_t depth)
{
    if (now_s > 0 && depth >= 0)
        current(h, now_s)->queue_depth = depth;
}

json_t *gw_history_json(const gw_history_t *h, int64_t now_s)
{
    json_t *minutes = json_array();
    int64_t last = now_s / 60;
    for (int64_t minute = last - GW_HISTORY_MINUTES + 1; minute <= last; minute++) {
        const gw_history_bucket_t *b = minute >= 0 ? &h->b[minute % GW_HISTORY_MINUTES] : NULL;
        bool live = b != NULL && b->minute == minute && minute > 0;
        json_t *o = json_pack("{s:I}", "t", (json_int_t)(minute * 60));
        for (int i = 0; i < GW_HISTORY_NOUTCOMES; i++)
            json_object_set_new(o, outcome_names[i], json_integer(live ? b->jobs[i] : 0));
        json_object_set_new(o, "queue_depth", live && b->queue_depth >= 0 ? json_integer(b->queue_depth) : json_null());
        json_array_append_new(minutes, o);
    }
    return json_pack("{s:i, s:I, s:o}", "minute_seconds", 60, "now", (json_int_t)now_s, "minutes", minutes);
}
