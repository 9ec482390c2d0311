#ifndef GW_REPORTABLE_H
#define GW_REPORTABLE_H
/* Which failed jobs are the operator's trouble (reported to Sentry) and which are the users' own input (not sent at
 * all): a declared table of the user-input error codes. Meant to give way to the error catalogue (handlers/errors.h). */
#include <stdbool.h>

/* False for the codes of users' input (invalid_url, private/unavailable/age-gated videos, no transcript, blocked
 * content …); true for everything else (quota, auth, model, storage, internal) and for NULL. */
bool gw_sentry_code_reportable(const char *code);

#endif
