/* handlers/history: the ring of one-minute buckets behind GET /worker/history. */
#include "check.h"
#include "handlers/history.h"
#include <stdlib.h>

static json_t *minute_at(json_t *doc, size_t i)
{
    return json_array_get(json_object_get(doc, "minutes"), i);
}

static long long field(json_t *minute, const char *name)
{
    return json_integer_value(json_object_get(minute, name));
}

int main(void)
{
    gw_history_t *h = calloc(1, sizeof(*h));
    const int64_t t0 = 1800000000; /* a minute boundary: 1800000000 / 60 = 30000000 */

    /* empty: 60 minutes of zeros, no depth samples, the current minute last */
    json_t *doc = gw_history_json(h, t0 + 5);
    CHECK_INT(json_array_size(json_object_get(doc, "minutes")), GW_HISTORY_MINUTES);
    CHECK_INT(field(minute_at(doc, 59), "t"), t0);
    CHECK_INT(field(minute_at(doc, 0), "t"), t0 - 59 * 60);
    CHECK(json_is_null(json_object_get(minute_at(doc, 59), "queue_depth")));
    CHECK_INT(field(minute_at(doc, 59), "completed"), 0);
    CHECK_INT(json_integer_value(json_object_get(doc, "minute_seconds")), 60);
    json_decref(doc);

    /* outcomes land in their minute; the last depth sample of a minute wins */
    gw_history_job(h, t0 + 1, GW_HISTORY_COMPLETED);
    gw_history_job(h, t0 + 59, GW_HISTORY_COMPLETED);
    gw_history_job_named(h, t0 + 2, "failed");
    gw_history_job_named(h, t0 + 3, "retried");
    gw_history_job_named(h, t0 + 4, "cancelled");
    gw_history_job_named(h, t0 + 4, "lost"); /* not charted */
    gw_history_job_named(h, t0 + 4, NULL);
    gw_history_queue_depth(h, t0 + 10, 7);
    gw_history_queue_depth(h, t0 + 50, 3);
    gw_history_job(h, t0 + 60, GW_HISTORY_FAILED); /* the next minute */
    doc = gw_history_json(h, t0 + 61);
    json_t *m = minute_at(doc, 58);
    CHECK_INT(field(m, "t"), t0);
    CHECK_INT(field(m, "completed"), 2);
    CHECK_INT(field(m, "failed"), 1);
    CHECK_INT(field(m, "retried"), 1);
    CHECK_INT(field(m, "cancelled"), 1);
    CHECK_INT(field(m, "queue_depth"), 3);
    m = minute_at(doc, 59);
    CHECK_INT(field(m, "t"), t0 + 60);
    CHECK_INT(field(m, "failed"), 1);
    CHECK_INT(field(m, "completed"), 0);
    CHECK(json_is_null(json_object_get(m, "queue_depth")));
    json_decref(doc);

    /* 59 minutes later the first minute is the oldest still shown; one more and it has scrolled out */
    doc = gw_history_json(h, t0 + 59 * 60 + 30);
    CHECK_INT(field(minute_at(doc, 0), "t"), t0);
    CHECK_INT(field(minute_at(doc, 0), "completed"), 2);
    json_decref(doc);
    doc = gw_history_json(h, t0 + 60 * 60);
    CHECK_INT(field(minute_at(doc, 0), "t"), t0 + 60);
    CHECK_INT(field(minute_at(doc, 0), "failed"), 1);
    json_decref(doc);

    /* a bucket reused an hour later starts empty: the old minute's counts are not added to the new one */
    gw_history_job(h, t0 + 3600 + 5, GW_HISTORY_COMPLETED);
    doc = gw_history_json(h, t0 + 3600 + 6);
    CHECK_INT(field(minute_at(doc, 59), "t"), t0 + 3600);
    CHECK_INT(field(minute_at(doc, 59), "completed"), 1);
    CHECK_INT(field(minute_at(doc, 59), "failed"), 0);
    CHECK(json_is_null(json_object_get(minute_at(doc, 59), "queue_depth")));
    long long total = 0;
    for (size_t i = 0; i < GW_HISTORY_MINUTES; i++)
        total += field(minute_at(doc, i), "completed") + field(minute_at(doc, i), "failed");
    CHECK_INT(total, 2); /* the failure at t0+60 and the new completion: t0's minute has scrolled out */
    json_decref(doc);

    /* after a long silence every bucket is stale and reads as zero */
    doc = gw_history_json(h, t0 + 5 * 3600);
    total = 0;
    for (size_t i = 0; i < GW_HISTORY_MINUTES; i++)
        total += field(minute_at(doc, i), "completed") + field(minute_at(doc, i), "failed") +
                 (json_is_null(json_object_get(minute_at(doc, i), "queue_depth")) ? 0 : 1);
    CHECK_INT(total, 0);
    json_decref(doc);

    /* the process-wide instance is one object */
    CHECK(gw_history() == gw_history());
    free(h);
    return check_report();
}
