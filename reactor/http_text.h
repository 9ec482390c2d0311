#ifndef GW_HTTP_TEXT_H
#define GW_HTTP_TEXT_H
/* Private to reactor/server.c: the text of HTTP answers. */
#include <h2o.h>
#include <stdbool.h>

const char *gw_http_reason_phrase(int status);
/* The JSON error code for an HTTP status the server answers itself ("not_found", …). */
const char *gw_http_error_code_for(int status);
/* {"error":{"code":…,"message":…}} in pool memory. */
h2o_iovec_t gw_http_json_error(h2o_mem_pool_t *pool, const char *code, const char *msg, size_t msg_len);
/* Whether a handler's header may be sent: a token name, no framing header, no control bytes in the value. */
bool gw_http_header_allowed(const char *name, const char *value);
bool gw_http_value_allowed(const char *value);  /* no control bytes */
bool gw_http_is_json(const char *content_type); /* application/json, with or without parameters */

#endif
