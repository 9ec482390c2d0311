/* Unit tests for handlers/result: the analysis-result contract (timestamps, validation and repair, the title rule,
 * the visual-audit types). */
#include "check.h"
#include "handlers/result.h"
#include <jansson.h>
#include <stdlib.h>

static void test_timestamps(void)
{
    int s = -1;
    CHECK(gw_parse_timestamp("01:30", &s) == 0 && s == 90);
    CHECK(gw_parse_timestamp("1:30", &s) == 0 && s == 90);
    CHECK(gw_parse_timestamp("[01:30]", &s) == 0 && s == 90);
    CHECK(gw_parse_timestamp(" 00:00 ", &s) == 0 && s == 0);
    CHECK(gw_parse_timestamp("1:30:05", &s) == 0 && s == 5405);
    CHECK(gw_parse_timestamp("01:02:03", &s) == 0 && s == 3723);
    CHECK(gw_parse_timestamp("[1:00:00]", &s) == 0 && s == 3600);
    CHECK(gw_parse_timestamp("75:30", &s) == 0 && s == 4530);
    CHECK(gw_parse_timestamp("90s", &s) == -1);
    CHECK(gw_parse_timestamp("1:5", &s) == -1);
    CHECK(gw_parse_timestamp("01:60", &s) == -1);
    CHECK(gw_parse_timestamp("1:60:00", &s) == -1);
    CHECK(gw_parse_timestamp("01:30.5", &s) == -1);
    CHECK(gw_parse_timestamp("[01:30", &s) == -1);
    CHECK(gw_parse_timestamp("01:30]", &s) == -1);
    CHECK(gw_parse_timestamp("123:00:00", &s) == -1);
    CHECK(gw_parse_timestamp("", &s) == -1);
    CHECK(gw_parse_timestamp(NULL, &s) == -1);
    CHECK(gw_parse_timestamp("-1:00", &s) == -1);

    char buf[32];
    gw_format_timestamp(0, buf, sizeof(buf));
    CHECK_STR(buf, "00:00");
    gw_format_timestamp(90, buf, sizeof(buf));
    CHECK_STR(buf, "01:30");
    gw_format_timestamp(3599, buf, sizeof(buf));
    CHECK_STR(buf, "59:59");
    gw_format_timestamp(3600, buf, sizeof(buf));
    CHECK_STR(buf, "1:00:00");
    gw_format_timestamp(5405, buf, sizeof(buf));
    CHECK_STR(buf, "1:30:05");
    gw_format_timestamp(-5, buf, sizeof(buf));
    CHECK_STR(buf, "00:00");
}

static json_t *load(const char *s)
{
    json_t *j = json_loads(s, 0, NULL);
    if (j == NULL)
        abort();
    return j;
}

static void test_validate_repairs(void)
{
    json_t *r = load("{\"title\":\"  T  \",\"summary\":\" A summary. \",\"keyTakeaways\":[\" one \",\"\",3,\"two\"],"
                     "\"timeline\":["
                     "{\"timestamp\":\"[0:00]\",\"description\":\" Intro \",\"details\":[\"a\",\" \"],\"extra\":1},"
                     "{\"timestamp\":\"02:00\",\"description\":\"Main\"},"
                     "{\"timestamp\":\"01:00\",\"description\":\"Backwards\",\"details\":[]},"
                     "{\"timestamp\":\"90s\",\"description\":\"Bad ts\",\"details\":[]},"
                     "{\"timestamp\":\"03:00\",\"description\":\"  \",\"details\":[]},"
                     "{\"timestamp\":\"09:59\",\"description\":\"Slack ok\",\"details\":[]},"
                     "{\"timestamp\":\"10:05\",\"description\":\"Too late\",\"details\":[]}],"
                     "\"keywords\":[\"C\",\"compilers\",\"Compilers\",\" c \",\"LLVM\"],"
                     "\"visualAudit\":[{\"timestamp\":\"01:30\",\"detail\":\"chart\",\"type\":\"Chart\"}],"
                     "\"confidence\":0.9}");
    char err[256];
    unsigned repairs = 0;
    CHECK_INT(gw_result_validate_ex(r, 598.5, false, err, sizeof(err), &repairs), 0);
    CHECK(repairs > 5);
    CHECK(err[0] != '\0');
    CHECK_STR(json_string_value(json_object_get(r, "title")), "T");
    CHECK_STR(json_string_value(json_object_get(r, "summary")), "A summary.");
    json_t *kt = json_object_get(r, "keyTakeaways");
    CHECK_INT(json_array_size(kt), 2);
    CHECK_STR(json_string_value(json_array_get(kt, 0)), "one");
    json_t *tl = json_object_get(r, "timeline");
    CHECK_INT(json_array_size(tl), 3);
    CHECK_STR(json_string_value(json_object_get(json_array_get(tl, 0), "timestamp")), "00:00");
    CHECK_STR(json_string_value(json_object_get(json_array_get(tl, 0), "description")), "Intro");
    CHECK_INT(json_array_size(json_object_get(json_array_get(tl, 0), "details")), 1);
    CHECK(json_object_get(json_array_get(tl, 0), "extra") == NULL);
    CHECK(json_is_array(json_object_get(json_array_get(tl, 1), "details"))); /* added */
    CHECK_STR(json_string_value(json_object_get(json_array_get(tl, 2), "description")), "Slack ok");
    json_t *kw = json_object_get(r, "keywords");
    CHECK_INT(json_array_size(kw), 3);
    CHECK_STR(json_string_value(json_array_get(kw, 0)), "C");
    CHECK_STR(json_string_value(json_array_get(kw, 1)), "compilers");
    CHECK_STR(json_string_value(json_array_get(kw, 2)), "LLVM");
    CHECK(json_object_get(r, "visualAudit") == NULL); /* not deep */
    CHECK(json_object_get(r, "confidence") == NULL);
    json_decref(r);

    /* A clean result needs no repair; unknown duration skips the range check. */
    r = load("{\"title\":\"T\",\"summary\":\"S\",\"keyTakeaways\":[\"k\"],\"timeline\":[{\"timestamp\":\"00:00\","
             "\"description\":\"d\",\"details\":[]},{\"timestamp\":\"2:00:00\",\"description\":\"late\",\"details\":[\"x\"]}],"
             "\"keywords\":[]}");
    CHECK_INT(gw_result_validate_ex(r, -1, false, err, sizeof(err), &repairs), 0);
    CHECK_INT(repairs, 0);
    CHECK_STR(err, "");
    CHECK_INT(json_array_size(json_object_get(r, "timeline")), 2);
    json_decref(r);

    /* Long video: normalization to H:MM:SS. */
    r = load("{\"summary\":\"S\",\"keyTakeaways\":[\"k\"],\"timeline\":[{\"timestamp\":\"75:30\",\"description\":\"d\","
             "\"details\":[]}],\"keywords\":[\"a\"]}");
    CHECK_INT(gw_result_validate(r, 5000, false, err, sizeof(err)), 0);
    CHECK_STR(json_string_value(json_object_get(json_array_get(json_object_get(r, "timeline"), 0), "timestamp")), "1:15:30");
    CHECK(json_object_get(r, "title") == NULL);
    CHECK_INT(gw_result_fill_title(r, "  From metadata "), 1);
    CHECK_STR(json_string_value(json_object_get(r, "title")), "From metadata");
    /* The video's own title always wins; the earlier wording is kept beside it. */
    CHECK_INT(gw_result_fill_title(r, "Other"), 1);
    CHECK_STR(json_string_value(json_object_get(r, "title")), "Other");
    CHECK_STR(json_string_value(json_object_get(r, "modelTitle")), "From metadata");
    json_decref(r);
}

static void test_validate_deep(void)
{
    char err[256];
    json_t *r = load("{\"title\":\"T\",\"summary\":\"S\",\"keyTakeaways\":[\"k\"],\"timeline\":[{\"timestamp\":\"00:10\","
                     "\"description\":\"d\",\"details\":[]}],\"keywords\":[\"a\"],\"visualAudit\":["
                     "{\"timestamp\":\"00:30\",\"detail\":\" Bar chart \",\"type\":\"Chart\"},"
                     "{\"timestamp\":\"00:20\",\"detail\":\"backwards\",\"type\":\"Slide\"},"
                     "{\"timestamp\":\"00:40\",\"detail\":\"no type\"},"
                     "{\"timestamp\":\"00:50\",\"detail\":\"\",\"type\":\"Slide\"},"
                     "{\"timestamp\":\"99:00\",\"detail\":\"too late\",\"type\":\"Slide\"}]}");
    CHECK_INT(gw_result_validate(r, 120, true, err, sizeof(err)), 0);
    json_t *va = json_object_get(r, "visualAudit");
    CHECK_INT(json_array_size(va), 2);
    CHECK_STR(json_string_value(json_object_get(json_array_get(va, 0), "detail")), "Bar chart");
    CHECK_STR(json_string_value(json_object_get(json_array_get(va, 1), "type")), "Other");
    json_decref(r);

    r = load("{\"title\":\"T\",\"summary\":\"S\",\"keyTakeaways\":[\"k\"],\"timeline\":[{\"timestamp\":\"00:10\","
             "\"description\":\"d\",\"details\":[]}],\"keywords\":[\"a\"]}");
    CHECK_INT(gw_result_validate(r, 120, true, err, sizeof(err)), 0);
    CHECK(json_is_array(json_object_get(r, "visualAudit")));
    json_decref(r);
}

static void expect_unusable(const char *s, double duration, const char *reason_part)
{
    char err[256] = "";
    json_t *r = load(s);
    CHECK_INT(gw_result_validate(r, duration, false, err, sizeof(err)), -1);
    if (strstr(err, reason_part) == NULL)
        fprintf(stderr, "unexpected reason: %s (wanted %s)\n", err, reason_part);
    CHECK(strstr(err, reason_part) != NULL);
    json_decref(r);
}

static void test_validate_unusable(void)
{
    expect_unusable("[]", 10, "not a JSON object");
    expect_unusable("{\"keyTakeaways\":[\"k\"],\"timeline\":[],\"keywords\":[]}", 10, "summary");
    expect_unusable("{\"summary\":\"  \",\"keyTakeaways\":[\"k\"],\"timeline\":[],\"keywords\":[]}", 10, "summary");
    expect_unusable("{\"summary\":\"S\",\"timeline\":[],\"keywords\":[]}", 10, "keyTakeaways missing");
    expect_unusable("{\"summary\":\"S\",\"keyTakeaways\":\"k\",\"timeline\":[],\"keywords\":[]}", 10, "keyTakeaways is not");
    expect_unusable("{\"summary\":\"S\",\"keyTakeaways\":[\"\"],\"timeline\":[],\"keywords\":[]}", 10, "keyTakeaways empty");
    expect_unusable("{\"summary\":\"S\",\"keyTakeaways\":[\"k\"],\"keywords\":[]}", 10, "timeline missing");
    expect_unusable("{\"summary\":\"S\",\"keyTakeaways\":[\"k\"],\"timeline\":[],\"keywords\":[]}", 10, "timeline empty");
    expect_unusable("{\"summary\":\"S\",\"keyTakeaways\":[\"k\"],\"timeline\":[{\"timestamp\":\"00:01\",\"description\":\"d\"}]}",
                    10, "keywords missing");
    /* Every timestamp beyond the duration (the stand-in's bad_timestamps fault): re-ask. */
    expect_unusable("{\"summary\":\"S\",\"keyTakeaways\":[\"k\"],\"timeline\":[{\"timestamp\":\"50:00\",\"description\":\"d\"},"
                    "{\"timestamp\":\"abc\",\"description\":\"d\"}],\"keywords\":[]}",
                    60, "no usable timeline");
}

static json_t *minimal(const char *title_json)
{
    char buf[512];
    snprintf(buf, sizeof(buf),
             "{%s%s\"summary\":\"S\",\"keyTakeaways\":[\"k\"],\"timeline\":[{\"timestamp\":\"00:00\",\"description\":\"d\","
             "\"details\":[]}],\"keywords\":[]}",
             title_json, title_json[0] ? "," : "");
    return load(buf);
}

static void test_title_rule(void)
{
    char err[256];
    /* The model's title differs from the video's: the video's is stored, the model's kept as modelTitle. */
    json_t *r = minimal("\"title\":\" How Compilers Work: A Friendly Tour \"");
    CHECK_INT(gw_result_validate(r, 60, false, err, sizeof(err)), 0);
    CHECK_INT(gw_result_fill_title(r, "Compilers in 10 minutes"), 1);
    CHECK_STR(json_string_value(json_object_get(r, "title")), "Compilers in 10 minutes");
    CHECK_STR(json_string_value(json_object_get(r, "modelTitle")), "How Compilers Work: A Friendly Tour");
    /* The stored result still passes the contract (modelTitle is a known key). */
    CHECK_INT(gw_result_validate(r, 60, false, err, sizeof(err)), 0);
    CHECK_STR(json_string_value(json_object_get(r, "modelTitle")), "How Compilers Work: A Friendly Tour");
    json_decref(r);

    /* Same wording up to case and blanks: nothing worth keeping beside it. */
    r = minimal("\"title\":\"compilers IN 10 minutes\"");
    CHECK_INT(gw_result_fill_title(r, "  Compilers in 10 minutes\n"), 1);
    CHECK_STR(json_string_value(json_object_get(r, "title")), "Compilers in 10 minutes");
    CHECK(json_object_get(r, "modelTitle") == NULL);
    json_decref(r);

    /* Unknown video title (NULL, blank, not UTF-8): the model's title stays, no modelTitle. */
    const char *unknown[] = {NULL, "", " \t ", "\xff\xfe"};
    for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
        r = minimal("\"title\":\" Model words \",\"modelTitle\":\"stale\"");
        CHECK_INT(gw_result_fill_title(r, unknown[i]), 0);
        CHECK_STR(json_string_value(json_object_get(r, "title")), "Model words");
        CHECK(json_object_get(r, "modelTitle") == NULL);
        json_decref(r);
    }

    /* No title anywhere: none is invented. */
    r = minimal("");
    CHECK_INT(gw_result_fill_title(r, NULL), 0);
    CHECK(json_object_get(r, "title") == NULL);
    CHECK(json_object_get(r, "modelTitle") == NULL);
    json_decref(r);

    /* A modelTitle the producer wrote itself is replaced by the rule, never trusted. */
    r = minimal("\"title\":\"Video title\",\"modelTitle\":\"forged\"");
    CHECK_INT(gw_result_fill_title(r, "Video title"), 1);
    CHECK(json_object_get(r, "modelTitle") == NULL);
    json_decref(r);

    /* The validator drops a non-string modelTitle like any other text field. */
    r = minimal("\"title\":\"T\",\"modelTitle\":42");
    CHECK_INT(gw_result_validate(r, 60, false, err, sizeof(err)), 0);
    CHECK(json_object_get(r, "modelTitle") == NULL);
    CHECK(strstr(err, "modelTitle") != NULL);
    CHECK_INT(gw_result_fill_title(NULL, "x"), 0);
    json_decref(r);
}

static void test_visual_types(void)
{
    const char *want[] = {"Chart", "Slide", "Diagram", "Code", "Text", "Demo", "Product", "Person", "Scene", "Other"};
    size_t n = 0;
    while (gw_result_visual_types[n] != NULL)
        n++;
    CHECK_INT(n, sizeof(want) / sizeof(want[0]));
    for (size_t i = 0; i < n && i < sizeof(want) / sizeof(want[0]); i++)
        CHECK_STR(gw_result_visual_types[i], want[i]);
    CHECK_STR(gw_result_visual_type("product"), "Product");
    CHECK_STR(gw_result_visual_type(" PRODUCT "), "Product");
    CHECK_STR(gw_result_visual_type("scene change"), GW_RESULT_TYPE_SCENE_CHANGE);
    CHECK(gw_result_visual_type("Products") == NULL);
    CHECK(gw_result_visual_type("Prod") == NULL);
    CHECK(gw_result_visual_type("") == NULL);
    CHECK(gw_result_visual_type(NULL) == NULL);

    char err[256];
    unsigned repairs = 0;
    json_t *r = load("{\"title\":\"T\",\"summary\":\"S\",\"keyTakeaways\":[\"k\"],\"timeline\":[{\"timestamp\":\"00:10\","
                     "\"description\":\"d\",\"details\":[]}],\"keywords\":[\"a\"],\"visualAudit\":["
                     "{\"timestamp\":\"00:10\",\"detail\":\"the phone on the desk\",\"type\":\"Product\"},"
                     "{\"timestamp\":\"00:20\",\"detail\":\"a bar chart\",\"type\":\"chart\"},"
                     "{\"timestamp\":\"00:30\",\"detail\":\"a cut\",\"type\":\"Scene change\"},"
                     "{\"timestamp\":\"00:40\",\"detail\":\"a map\",\"type\":\"Map\"}]}");
    CHECK_INT(gw_result_validate_ex(r, 120, true, err, sizeof(err), &repairs), 0);
    json_t *va = json_object_get(r, "visualAudit");
    CHECK_INT(json_array_size(va), 4);
    CHECK_STR(json_string_value(json_object_get(json_array_get(va, 0), "type")), "Product");
    CHECK_STR(json_string_value(json_object_get(json_array_get(va, 1), "type")), "Chart");
    CHECK_STR(json_string_value(json_object_get(json_array_get(va, 2), "type")), "Scene change");
    CHECK_STR(json_string_value(json_object_get(json_array_get(va, 3), "type")), "Other");
    CHECK_INT(repairs, 2); /* "chart" respelled, "Map" replaced */
    CHECK(strstr(err, "unknown") != NULL);
    json_decref(r);
}

int main(void)
{
    test_timestamps();
    test_validate_repairs();
    test_validate_deep();
    test_validate_unusable();
    test_title_rule();
    test_visual_types();
    return check_report();
}
