#ifndef GW_TEXT_H
#define GW_TEXT_H
/* Text helpers every module shares: allocation that aborts when memory runs out (house style §5), one growable
 * NUL-terminated string buffer, and ASCII character classes. The classes are deliberately not <ctype.h>: they never
 * depend on the locale and take any int (a signed char included) without undefined behaviour. */
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

/* ---- allocation: each aborts instead of returning NULL; a 0-byte request still returns a unique pointer ---- */

void *gw_xmalloc(size_t n);
void *gw_xcalloc(size_t count, size_t size);
void *gw_xrealloc(void *p, size_t n);
char *gw_xstrdup(const char *s);            /* NULL is copied as "" */
char *gw_xstrndup(const char *s, size_t n); /* at most n bytes, fewer when s ends sooner; always NUL-terminated */
/* Returns p, aborting when it is NULL: for libraries whose constructors fail only when memory runs out (jansson). */
void *gw_must(void *p);

/* ---- the string buffer ----
 * Start from {0}. data is NULL until the first append (even of 0 bytes), then always NUL-terminated at len. */
typedef struct st_gw_buf_t {
    char *data;
    size_t len, cap;
} gw_buf_t;

void gw_buf_reserve(gw_buf_t *b, size_t extra); /* room for extra more bytes and the NUL */
void gw_buf_append(gw_buf_t *b, const void *s, size_t n);
void gw_buf_puts(gw_buf_t *b, const char *s);
void gw_buf_putc(gw_buf_t *b, char c);
void gw_buf_printf(gw_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void gw_buf_vprintf(gw_buf_t *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
void gw_buf_clear(gw_buf_t *b); /* empties it, keeping the memory */
/* Hands the string over to the caller (free() it; NULL when nothing was ever appended) and resets b to {0}. */
char *gw_buf_take(gw_buf_t *b);
void gw_buf_free(gw_buf_t *b);

/* ---- ASCII ---- */

static inline int gw_ascii_lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

static inline bool gw_ascii_is_digit(int c)
{
    return c >= '0' && c <= '9';
}

static inline bool gw_ascii_is_alpha(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static inline bool gw_ascii_is_alnum(int c)
{
    return gw_ascii_is_alpha(c) || gw_ascii_is_digit(c);
}

static inline bool gw_ascii_is_hex(int c)
{
    return gw_ascii_is_digit(c) || (gw_ascii_lower(c) >= 'a' && gw_ascii_lower(c) <= 'f');
}

/* The value of hex digit c, or -1 when c is not one. */
static inline int gw_ascii_hexval(int c)
{
    return gw_ascii_is_digit(c) ? c - '0' : gw_ascii_is_hex(c) ? gw_ascii_lower(c) - 'a' + 10 : -1;
}

static inline bool gw_ascii_is_blank(int c) /* space or tab */
{
    return c == ' ' || c == '\t';
}

static inline bool gw_ascii_is_space(int c) /* isspace() in the C locale */
{
    return c == ' ' || (c >= '\t' && c <= '\r');
}

/* An HTTP token character (RFC 9110 tchar): header names, methods. */
static inline bool gw_ascii_is_tchar(int c)
{
    return gw_ascii_is_alnum(c) || (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* ASCII case-insensitive equality of two counted strings. */
bool gw_ascii_ieq_n(const char *a, size_t alen, const char *b, size_t blen);
/* ASCII case-insensitive strstr: the first occurrence of needle in hay, NULL when there is none ("" is found at once). */
const char *gw_ascii_istrstr(const char *hay, const char *needle);

/* ---- UTF-8 ---- */

/* Replaces, in place, every byte that is not part of a valid UTF-8 sequence (overlong, surrogate, > U+10FFFF,
 * truncated) with '?': jansson refuses invalid strings, and text from the web is not always clean. */
void gw_utf8_sanitize(char *s);

#endif
