/* Unit tests for reactor/text: allocation helpers, the string buffer, ASCII classes and UTF-8 repair. The character
 * classes are checked against <ctype.h> in the C locale (this program never calls setlocale), the UTF-8 repair against
 * jansson, which refuses exactly the invalid strings. */
#include "check.h"
#include "reactor/text.h"
#include <ctype.h>
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>

static void test_alloc(void)
{
    char *p = gw_xmalloc(0);
    CHECK(p != NULL);
    p = gw_xrealloc(p, 0); /* realloc(p, 0) may free and return NULL; ours must not */
    CHECK(p != NULL);
    p = gw_xrealloc(p, 100);
    memset(p, 'x', 100);
    free(p);

    unsigned char *z = gw_xcalloc(16, 4);
    size_t nonzero = 0;
    for (size_t i = 0; i < 64; i++)
        nonzero += z[i] != 0;
    CHECK_INT(nonzero, 0);
    free(z);
    z = gw_xcalloc(0, 0);
    CHECK(z != NULL);
    free(z);

    char *s = gw_xstrdup("abc");
    CHECK_STR(s, "abc");
    free(s);
    s = gw_xstrdup(NULL);
    CHECK_STR(s, "");
    free(s);
    s = gw_xstrndup("abcdef", 3);
    CHECK_STR(s, "abc");
    free(s);
    s = gw_xstrndup("ab\0cd", 5); /* stops at the NUL */
    CHECK_STR(s, "ab");
    free(s);
    /* n beyond the string's end: no read past the NUL (ASan checks it under GW_SANITIZE) */
    char *short_str = gw_xmalloc(3);
    memcpy(short_str, "hi", 3);
    s = gw_xstrndup(short_str, 4096);
    CHECK_STR(s, "hi");
    free(s);
    free(short_str);
    s = gw_xstrndup("", 0);
    CHECK_STR(s, "");
    free(s);

    int x = 7;
    CHECK(gw_must(&x) == &x);
}

static void test_buf_empty(void)
{
    gw_buf_t b = {0};
    CHECK(b.data == NULL);
    CHECK(gw_buf_take(&b) == NULL); /* nothing appended: NULL, as callers that return "no text" rely on */

    gw_buf_append(&b, "", 0); /* any append, even of nothing, makes it a string */
    CHECK(b.data != NULL);
    CHECK_INT(b.len, 0);
    CHECK_STR(b.data, "");
    gw_buf_free(&b);
    CHECK(b.data == NULL && b.len == 0 && b.cap == 0);

    gw_buf_printf(&b, "%s", "");
    CHECK(b.data != NULL);
    CHECK_STR(b.data, "");
    char *s = gw_buf_take(&b);
    CHECK_STR(s, "");
    CHECK(b.data == NULL && b.len == 0 && b.cap == 0);
    free(s);
}

static void test_buf_append(void)
{
    gw_buf_t b = {0};
    gw_buf_puts(&b, "abc");
    gw_buf_putc(&b, '-');
    gw_buf_append(&b, "xyz123", 3);
    CHECK_STR(b.data, "abc-xyz");
    CHECK_INT(b.len, 7);
    CHECK(b.cap > b.len);

    /* bytes, not strings: an embedded NUL counts */
    gw_buf_append(&b, "\0z", 2);
    CHECK_INT(b.len, 9);
    CHECK(memcmp(b.data, "abc-xyz\0z", 10) == 0);

    /* clear keeps the memory */
    char *before = b.data;
    size_t cap = b.cap;
    gw_buf_clear(&b);
    CHECK_INT(b.len, 0);
    CHECK_STR(b.data, "");
    CHECK(b.data == before && b.cap == cap);
    gw_buf_clear(&b);
    CHECK_INT(b.len, 0);

    /* growth over many capacities: the content is every byte appended, in order */
    size_t total = 0;
    for (int i = 0; i < 5000; i++) {
        char c = (char)('a' + i % 26);
        if (i % 3 == 0) {
            gw_buf_putc(&b, c);
            total += 1;
        } else {
            char chunk[40];
            memset(chunk, c, sizeof(chunk));
            gw_buf_append(&b, chunk, (size_t)(i % 40));
            total += (size_t)(i % 40);
        }
    }
    CHECK_INT(b.len, total);
    CHECK_INT(strlen(b.data), total);
    CHECK(b.cap > b.len);
    size_t pos = 0, wrong = 0;
    for (int i = 0; i < 5000; i++) {
        char c = (char)('a' + i % 26);
        size_t n = i % 3 == 0 ? 1 : (size_t)(i % 40);
        for (size_t k = 0; k < n; k++)
            wrong += b.data[pos++] != c;
    }
    CHECK_INT(wrong, 0);
    gw_buf_free(&b);

    /* an uninitialised clear on {0} is harmless */
    gw_buf_clear(&b);
    CHECK(b.data == NULL);

    gw_buf_reserve(&b, 1000);
    CHECK(b.cap >= 1001);
    CHECK_INT(b.len, 0);
    gw_buf_free(&b);
}

static void test_buf_printf(void)
{
    /* Lengths 0..299 appended after prefixes of every length: every case of "fits", "fits but for the NUL" and "does
     * not fit" in the room left. The result must equal snprintf's. */
    size_t bad = 0;
    char want[1024], pad[400];
    memset(pad, 'p', sizeof(pad) - 1);
    pad[sizeof(pad) - 1] = '\0';
    for (int prefix = 0; prefix < 140; prefix += 7) {
        for (int n = 0; n < 300; n += 3) {
            gw_buf_t b = {0};
            gw_buf_append(&b, pad, (size_t)prefix);
            gw_buf_printf(&b, "%.*s|%d", n, pad, n);
            int w = snprintf(want, sizeof(want), "%.*s%.*s|%d", prefix, pad, n, pad, n);
            bad += b.len != (size_t)w || strcmp(b.data, want) != 0 || b.cap <= b.len;
            gw_buf_free(&b);
        }
    }
    CHECK_INT(bad, 0);

    gw_buf_t b = {0};
    gw_buf_printf(&b, "%s=%d;", "a", 1);
    gw_buf_printf(&b, "%5.2f|%-3s|%x", 3.14159, "z", 255);
    CHECK_STR(b.data, "a=1; 3.14|z  |ff");
    gw_buf_printf(&b, "%8000d", 1); /* far beyond the current capacity */
    CHECK_INT(b.len, strlen("a=1; 3.14|z  |ff") + 8000);
    CHECK(b.data[b.len - 1] == '1' && b.data[b.len - 2] == ' ');
    CHECK_INT(strlen(b.data), b.len);
    gw_buf_free(&b);
}

static bool oracle_tchar(int c)
{
    /* RFC 9110 5.6.2: any VCHAR except the delimiters */
    return c > 0x20 && c < 0x7f && strchr("\"(),/:;<=>?@[\\]{}", c) == NULL;
}

static void test_ascii_classes(void)
{
    size_t bad = 0;
    for (int c = 0; c < 256; c++) {
        bad += gw_ascii_lower(c) != tolower(c);
        bad += gw_ascii_is_digit(c) != (isdigit(c) != 0);
        bad += gw_ascii_is_alpha(c) != (isalpha(c) != 0);
        bad += gw_ascii_is_alnum(c) != (isalnum(c) != 0);
        bad += gw_ascii_is_hex(c) != (isxdigit(c) != 0);
        bad += gw_ascii_is_space(c) != (isspace(c) != 0);
        bad += gw_ascii_is_blank(c) != (isblank(c) != 0);
        bad += gw_ascii_is_tchar(c) != oracle_tchar(c);
        int v = gw_ascii_hexval(c);
        if (isxdigit(c)) {
            char s[2] = {(char)c, '\0'};
            bad += v != (int)strtol(s, NULL, 16);
        } else {
            bad += v != -1;
        }
    }
    CHECK_INT(bad, 0);
    /* a plain char above 0x7f is negative on most ABIs: never a class member, never changed */
    for (int c = -128; c < 0; c++) {
        bad += gw_ascii_lower(c) != c || gw_ascii_is_digit(c) || gw_ascii_is_alpha(c) || gw_ascii_is_alnum(c) ||
               gw_ascii_is_hex(c) || gw_ascii_is_space(c) || gw_ascii_is_blank(c) || gw_ascii_is_tchar(c) ||
               gw_ascii_hexval(c) != -1;
    }
    CHECK_INT(bad, 0);
    CHECK(!gw_ascii_is_tchar('\0')); /* strchr would find the literal's terminator */
}

static void test_ieq(void)
{
    CHECK(gw_ascii_ieq_n("YouTube.COM", 11, "youtube.com", 11));
    CHECK(gw_ascii_ieq_n("", 0, "", 0));
    CHECK(gw_ascii_ieq_n("abcX", 3, "ABCY", 3)); /* only the counted bytes */
    CHECK(!gw_ascii_ieq_n("abc", 3, "abcd", 4));
    CHECK(!gw_ascii_ieq_n("abd", 3, "abc", 3));
    CHECK(!gw_ascii_ieq_n("@", 1, "`", 1));                 /* 0x40 and 0x60 differ by the case bit but are not letters */
    CHECK(!gw_ascii_ieq_n("\xc4", 1, "\xe4", 1));           /* Latin-1 Ä / ä: not ASCII, compared exactly */
    CHECK(gw_ascii_ieq_n("a\0b", 3, "A\0B", 3));            /* counted, so NULs inside are compared too */
    CHECK(!gw_ascii_ieq_n("live_chat", 9, "LIVE-CHAT", 9)); /* '_' and '-' are not case pairs */
}

static void test_istrstr(void)
{
    const char *hay = "ERROR: [youtube] x: Sign In to confirm you're not a BOT";
    CHECK(gw_ascii_istrstr(hay, "sign in to confirm") == strstr(hay, "Sign In to confirm"));
    CHECK(gw_ascii_istrstr(hay, "not a bot") == hay + strlen(hay) - 9);
    CHECK(gw_ascii_istrstr(hay, "ERROR") == hay);
    CHECK(gw_ascii_istrstr(hay, "bots") == NULL); /* runs past the end */
    CHECK(gw_ascii_istrstr(hay, "private video") == NULL);
    CHECK(gw_ascii_istrstr("aaab", "aab") != NULL); /* a partial match does not skip the real one */
    CHECK(gw_ascii_istrstr("per_Day quota", "PER_DAY") != NULL);
    CHECK(gw_ascii_istrstr("per-day", "per_day") == NULL);
    CHECK(gw_ascii_istrstr("", "a") == NULL);
    CHECK(gw_ascii_istrstr("abc", "") != NULL);                       /* as strstr */
    CHECK(gw_ascii_istrstr("xstra\xc3\x9f", "STRA\xc3\x9f") != NULL); /* non-ASCII bytes match themselves */
    CHECK(gw_ascii_istrstr("\xc4", "\xe4") == NULL);
}

static char *sanitized(const char *s)
{
    char *d = gw_xstrdup(s);
    gw_utf8_sanitize(d);
    return d;
}

static void test_utf8(void)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"plain ascii", "plain ascii"},
        {"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x8e\xac", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x8e\xac"}, /* é € 🎬 */
        {"a\x80z", "a?z"},                                                                          /* lone continuation */
        {"\xc0\x80", "??"},                                                                         /* overlong NUL */
        {"\xc1\xbf", "??"},                                                                         /* overlong */
        {"\xe0\x9f\xbf", "???"},                                                                    /* overlong 3-byte */
        {"\xed\xa0\x80", "???"},                                                                    /* surrogate U+D800 */
        {"\xf0\x8f\xbf\xbf", "????"},                                                               /* overlong 4-byte */
        {"\xf4\x90\x80\x80", "????"},                                                               /* above U+10FFFF */
        {"\xf5\x80", "??"},                                                                         /* no such lead byte */
        {"ok\xe2\x82", "ok??"},                                                                     /* cut at the end */
        {"\xe2\x82z", "??z"},                                                                       /* cut in the middle */
        {"\xf4\x8f\xbf\xbf", "\xf4\x8f\xbf\xbf"},                                                   /* U+10FFFF itself */
        {"\xed\x9f\xbf", "\xed\x9f\xbf"},                                                           /* U+D7FF */
        {"", ""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *d = sanitized(cases[i].in);
        CHECK_STR(d, cases[i].out);
        free(d);
    }

    /* Random byte strings, biased towards UTF-8 lead and continuation bytes: whatever jansson accepts is left as it
     * is, and whatever comes out jansson accepts. */
    uint32_t seed = 12345;
    size_t changed_valid = 0, refused_after = 0, resized = 0, repaired = 0;
    for (int round = 0; round < 20000; round++) {
        char s[16];
        size_t n = 1 + round % 15;
        for (size_t i = 0; i < n; i++) {
            seed = seed * 1103515245u + 12345u;
            unsigned r = (seed >> 16) & 0xff;
            s[i] = (char)(r < 0x40   ? 'a' + r % 26
                          : r < 0x80 ? 0x80 | (r & 0x3f)
                          : r < 0xa0 ? 0xc0 | (r & 0x1f)
                          : r < 0xc0 ? 0xe0 | (r & 0x0f)
                                     : r | 0x01);
        }
        s[n] = '\0';
        json_t *before = json_string(s);
        char *d = sanitized(s);
        json_t *after = json_string(d);
        if (before != NULL)
            changed_valid += strcmp(d, s) != 0;
        else
            repaired++;
        refused_after += after == NULL;
        resized += strlen(d) != n; /* one '?' per bad byte: the length never changes */
        json_decref(before);
        json_decref(after);
        free(d);
    }
    CHECK_INT(changed_valid, 0);
    CHECK_INT(refused_after, 0);
    CHECK_INT(resized, 0);
    CHECK(repaired > 1000); /* the generator did produce invalid strings */
}

int main(void)
{
    test_alloc();
    test_buf_empty();
    test_buf_append();
    test_buf_printf();
    test_ascii_classes();
    test_ieq();
    test_istrstr();
    test_utf8();
    return check_report();
}
