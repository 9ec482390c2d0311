#include "check.h"
#include "reactor/log.h"
#include <jansson.h>
#include <stdlib.h>

static char last[4096];
static int lines;

static void sink(const char *line, void *data)
{
    snprintf(last, sizeof(last), "%s", line);
    lines++;
}

int main(void)
{
    gw_log_set_sink(sink, NULL);
    gw_log_init(GW_LOG_INFO, true);
    gw_log_secret("sk-supersecret-key");
    gw_log_secret("hunter2pw");

    gw_log_event(GW_LOG_INFO, "job-1", "metadata", 12.5, "using key %s and password=%s", "sk-supersecret-key", "hunter2pw");
    CHECK(strstr(last, "supersecret") == NULL);
    CHECK(strstr(last, "hunter2") == NULL);
    json_t *o = json_loads(last, 0, NULL);
    CHECK(o != NULL);
    CHECK_STR(json_string_value(json_object_get(o, "severity")), "INFO");
    CHECK_STR(json_string_value(json_object_get(o, "job_id")), "job-1");
    CHECK_STR(json_string_value(json_object_get(o, "stage")), "metadata");
    CHECK(json_real_value(json_object_get(o, "duration_ms")) == 12.5);
    CHECK(strstr(json_string_value(json_object_get(o, "message")), "[REDACTED]") != NULL);
    CHECK(json_object_get(o, "time") != NULL);
    json_decref(o);

    /* level filter */
    lines = 0;
    gw_debug("hidden");
    CHECK_INT(lines, 0);
    gw_warn("shown");
    CHECK_INT(lines, 1);

    /* text format carries the job id */
    gw_log_init(GW_LOG_DEBUG, false);
    gw_job_log(GW_LOG_ERROR, "abc", "boom %d", 42);
    CHECK(strstr(last, "ERROR") != NULL);
    CHECK(strstr(last, "job=abc") != NULL);
    CHECK(strstr(last, "boom 42") != NULL);

    CHECK_INT(gw_log_parse_level("warn"), GW_LOG_WARN);
    CHECK_INT(gw_log_parse_level("nope"), -1);
    gw_log_dispose();
    return check_report();
}
