#include "reactor/text.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* ---- allocation ---- */

void *gw_xmalloc(size_t n)
{
    return gw_must(malloc(n == 0 ? 1 : n));
}

void *gw_xcalloc(size_t count, size_t size)
{
    return gw_must(calloc(count == 0 ? 1 : count, size == 0 ? 1 : size));
}

void *gw_xrealloc(void *p, size_t n)
{
    /* realloc(p, 0) may free p and return NULL, which would read as a failure: never ask for 0 bytes */
    return gw_must(realloc(p, n == 0 ? 1 : n));
}

char *gw_xstrndup(const char *s, size_t n)
{
    n = strnlen(s, n);
    char *d = gw_xmalloc(n + 1);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

char *gw_xstrdup(const char *s)
{
    return s != NULL ? gw_xstrndup(s, strlen(s)) : gw_xstrndup("", 0);
}

void *gw_must(void *p)
{
    if (p == NULL)
        abort();
    return p;
}

/* ---- the string buffer ---- */

void gw_buf_reserve(gw_buf_t *b, size_t extra)
{
    if (extra > SIZE_MAX / 2 - b->len)
        abort(); /* no string this process builds comes near; a length that large is a bug */
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return;
    size_t cap = b->cap < 64 ? 64 : b->cap;
    while (cap < need)
        cap *= 2;
    b->data = gw_xrealloc(b->data, cap);
    b->cap = cap;
}

void gw_buf_append(gw_buf_t *b, const void *s, size_t n)
{
    gw_buf_reserve(b, n);
    if (n > 0)
        memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void gw_buf_puts(gw_buf_t *b, const char *s)
{
    gw_buf_append(b, s, strlen(s));
}

void gw_buf_putc(gw_buf_t *b, char c)
{
    gw_buf_append(b, &c, 1);
}

void gw_buf_vprintf(gw_buf_t *b, const char *fmt, va_list ap)
{
    va_list again;
    va_copy(again, ap);
    /* Format straight into the free room; only when it does not fit, grow and format again. */
    size_t room = b->cap - b->len;
    int n = vsnprintf(b->data != NULL ? b->data + b->len : NULL, room, fmt, ap);
    if (n < 0)
        abort(); /* an encoding error: the format is ours, so a bug */
    if ((size_t)n >= room) {
        gw_buf_reserve(b, (size_t)n);
        vsnprintf(b->data + b->len, (size_t)n + 1, fmt, again);
    }
    va_end(again);
    b->len += (size_t)n;
}

void gw_buf_printf(gw_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    gw_buf_vprintf(b, fmt, ap);
    va_end(ap);
}

void gw_buf_clear(gw_buf_t *b)
{
    b->len = 0;
    if (b->data != NULL)
        b->data[0] = '\0';
}

char *gw_buf_take(gw_buf_t *b)
{
    char *s = b->data;
    *b = (gw_buf_t){0};
    return s;
}

void gw_buf_free(gw_buf_t *b)
{
    free(b->data);
    *b = (gw_buf_t){0};
}

/* ---- ASCII ---- */

bool gw_ascii_ieq_n(const char *a, size_t alen, const char *b, size_t blen)
{
    if (alen != blen)
        return false;
    for (size_t i = 0; i < alen; i++)
        if (gw_ascii_lower((unsigned char)a[i]) != gw_ascii_lower((unsigned char)b[i]))
            return false;
    return true;
}

const char *gw_ascii_istrstr(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (;; hay++) {
        size_t i = 0;
        while (i < n && hay[i] != '\0' && gw_ascii_lower((unsigned char)hay[i]) == gw_ascii_lower((unsigned char)needle[i]))
            i++;
        if (i == n)
            return hay;
        if (hay[i] == '\0')
            return NULL; /* what is left of hay is shorter than needle */
    }
}

/* ---- UTF-8 ---- */

void gw_utf8_sanitize(char *s)
{
    unsigned char *p = (unsigned char *)s;
    while (*p != '\0') {
        size_t n = *p < 0x80 ? 1 : (*p >> 5) == 0x6 ? 2 : (*p >> 4) == 0xe ? 3 : (*p >> 3) == 0x1e ? 4 : 0;
        size_t k = 1;
        while (n > 1 && k < n && (p[k] & 0xc0) == 0x80)
            k++;
        if (n == 0 || k < n || (n == 2 && *p < 0xc2) || (n == 3 && *p == 0xe0 && p[1] < 0xa0) ||
            (n == 3 && *p == 0xed && p[1] >= 0xa0) || (n == 4 && *p == 0xf0 && p[1] < 0x90) || (n == 4 && *p > 0xf4) ||
            (n == 4 && *p == 0xf4 && p[1] >= 0x90)) {
            *p++ = '?';
            continue;
        }
        p += n;
    }
}
