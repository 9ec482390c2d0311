/* The text of HTTP answers: reason phrases, the JSON error body, which header names and values may be sent. Pure
 * functions, apart from reactor/server.c's connection handling. */
#include "reactor/http_text.h"
#include "reactor/text.h"
#include <stdio.h>
#include <string.h>
#include <strings.h>

const char *gw_http_reason_phrase(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 413:
        return "Payload Too Large";
    case 415:
        return "Unsupported Media Type";
    case 422:
        return "Unprocessable Entity";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return status < 400 ? "OK" : status < 500 ? "Client Error" : "Server Error";
    }
}

const char *gw_http_error_code_for(int status)
{
    switch (status) {
    case 400:
        return "bad_request";
    case 404:
        return "not_found";
    case 405:
        return "method_not_allowed";
    case 408:
        return "request_timeout";
    case 413:
        return "payload_too_large";
    case 417:
        return "expectation_failed";
    case 503:
        return "unavailable";
    default:
        return status < 500 ? "bad_request" : "internal_error";
    }
}

/* Escapes len bytes as JSON string content; dst must hold 6 * len bytes. */
static size_t json_escape(char *dst, const char *src, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    char *d = dst;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)src[i];
        if (c == '"' || c == '\\') {
            *d++ = '\\';
            *d++ = (char)c;
        } else if (c < 0x20) {
            memcpy(d, "\\u00", 4);
            d[4] = hex[c >> 4];
            d[5] = hex[c & 0xf];
            d += 6;
        } else {
            *d++ = (char)c;
        }
    }
    return (size_t)(d - dst);
}

h2o_iovec_t gw_http_json_error(h2o_mem_pool_t *pool, const char *code, const char *msg, size_t msg_len)
{
    static const char a[] = "{\"error\":{\"code\":\"", b[] = "\",\"message\":\"", c[] = "\"}}";
    size_t code_len = strlen(code);
    char *buf = h2o_mem_alloc_pool(pool, sizeof(a) + sizeof(b) + sizeof(c) + 6 * (code_len + msg_len)), *p = buf;

    memcpy(p, a, sizeof(a) - 1);
    p += sizeof(a) - 1;
    p += json_escape(p, code, code_len);
    memcpy(p, b, sizeof(b) - 1);
    p += sizeof(b) - 1;
    p += json_escape(p, msg, msg_len);
    memcpy(p, c, sizeof(c) - 1);
    p += sizeof(c) - 1;
    return h2o_iovec_init(buf, (size_t)(p - buf));
}

bool gw_http_is_json(const char *content_type)
{
    return strncasecmp(content_type, "application/json", sizeof("application/json") - 1) == 0;
}

/* No CR/LF (header injection) nor other controls but HTAB. */
bool gw_http_value_allowed(const char *value)
{
    for (const unsigned char *p = (const unsigned char *)value; *p != '\0'; p++)
        if ((*p < 0x20 && *p != '\t') || *p == 0x7f)
            return false;
    return true;
}

/* ---- responses ---- */

bool gw_http_header_allowed(const char *name, const char *value)
{
    static const char *framing[] = {"content-length", "transfer-encoding", "connection"};
    if (*name == '\0' || !gw_http_value_allowed(value))
        return false;
    for (const char *p = name; *p != '\0'; p++)
        if (!gw_ascii_is_tchar((unsigned char)*p))
            return false;
    for (size_t i = 0; i < sizeof(framing) / sizeof(framing[0]); i++)
        if (strcasecmp(name, framing[i]) == 0)
            return false;
    return true;
}
