#ifndef GW_CLI_H
#define GW_CLI_H
/* Subcommands: each is declared once (name, synopsis, options, what it needs from the configuration) so that the
 * overview, `COMMAND --help` and the refusal of stray arguments come from the same place. The daemon's own commands
 * (serve, migrate) are declared in handlers/main.c; the operator commands here: enqueue, status, analyze, cancel,
 * retry.
 * Exit codes: 0 done, 1 failed, 2 usage or configuration error (one line on stderr). */
#include "handlers/settings.h"
#include <stdbool.h>
#include <stdio.h>

/* Options a command accepts. */
#define GW_CLI_OPT_MODE 0x1u      /* --mode standard|deep (and --deep) */
#define GW_CLI_OPT_USER 0x2u      /* --user UUID */
#define GW_CLI_OPT_JSON 0x4u      /* --json */
#define GW_CLI_OPT_LANGUAGE 0x8u  /* --language TAG */
#define GW_CLI_OPT_PRIORITY 0x10u /* --priority N */

typedef struct st_gw_cli_args_t {
    const char *positional; /* the URL or job id */
    const char *mode;       /* "standard" unless --mode */
    const char *user;       /* NULL unless --user */
    const char *priority;   /* "0" unless --priority */
    const char *language;   /* NULL unless --language: the analysis's output language (BCP-47) */
    bool json;
} gw_cli_args_t;

typedef struct st_gw_cli_command_t {
    const char *name;
    const char *synopsis;   /* after the name, e.g. "URL [--mode standard|deep]" */
    const char *summary;    /* one line for the overview */
    const char *details;    /* options and notes for `COMMAND --help`; may be "" */
    const char *positional; /* the one positional argument's name ("URL", "job id"); NULL = takes none */
    unsigned options;       /* GW_CLI_OPT_* */
    unsigned need;          /* GW_SETTINGS_NEED_* for gw_settings_load */
    int (*run)(gw_settings_t *cfg, const gw_cli_args_t *args);
} gw_cli_command_t;

/* Parses argv[1..argc) for cmd (argv[0] is the command's name). Returns 0 when the command should run, 1 after printing
 * its usage to stdout (--help or -h anywhere: exit 0), -1 after printing one line on stderr (exit 2). */
int gw_cli_parse(const gw_cli_command_t *cmd, int argc, char **argv, gw_cli_args_t *args);
/* `COMMAND --help`: usage line, summary, details. */
void gw_cli_print_usage(const gw_cli_command_t *cmd, FILE *out);

extern const gw_cli_command_t gw_cli_enqueue;
extern const gw_cli_command_t gw_cli_status;
/* Runs the production pipeline once without a database (the same code a claimed job runs) and prints the result. */
extern const gw_cli_command_t gw_cli_analyze;
extern const gw_cli_command_t gw_cli_cancel;
/* A FAILED or CANCELLED job back to PENDING, charged again: the same SQL function as POST /worker/jobs/{id}/retry. */
extern const gw_cli_command_t gw_cli_retry;

#endif
