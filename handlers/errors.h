#ifndef GW_ERRORS_H
#define GW_ERRORS_H
/* The error-code catalogue: every code the worker stores in analysis_jobs.error_code or answers in an HTTP error body,
 * with whether it is transient (a job is retried while attempts remain; a client may try again), whose trouble it is
 * (the operator's: worth an alert, reported to Sentry with fault=operator; or the user's input), and the message a
 * user reads when it is final. docs/errors.md is this table (glint-worker --errors-markdown); openapi.json's
 * JobErrorCode / ApiErrorCode enums list the same codes (tests/unit/test_errors.c checks both). */
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

typedef enum en_gw_error_scope_t {
    GW_ERROR_JOB, /* stored on a job (error_code, error_message) */
    GW_ERROR_API, /* an HTTP error body {"error":{"code","message"}} */
    GW_ERROR_BOTH,
} gw_error_scope_t;

typedef struct st_gw_error_t {
    const char *code;
    gw_error_scope_t scope;
    bool transient;        /* jobs: retried while attempts remain (a call site may judge one occurrence otherwise) */
    bool operator_trouble; /* the operator's trouble (configuration, capacity, a dependency); false: the user's input */
    const char *message;   /* what happened, in the words a user reads when the job has finally failed */
} gw_error_t;

/* The entry for code, or NULL when the catalogue does not know it. */
const gw_error_t *gw_error_find(const char *code);
/* All entries, in catalogue order; *n receives the count. */
const gw_error_t *gw_errors_all(size_t *n);
/* The message stored with a failure: the caller's (specific) message, except when the failure is final although it was
 * transient (its attempts ran out), where a "will be retried" would be wrong: then the catalogue's message and how
 * many attempts were made. Returns msg or a pointer into buf. */
const char *gw_error_stored_message(const char *code, const char *msg, bool final, bool transient, int attempts, char *buf,
                                    size_t bufsz);
/* The catalogue as the markdown of docs/errors.md. */
void gw_errors_print_markdown(FILE *out);

#endif
