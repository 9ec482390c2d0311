#ifndef GW_CLI_H
#define GW_CLI_H
/* Operator commands besides the daemon: enqueue, status, analyze. Each returns the process exit code and prints one
 * clear line to stderr on failure. argv[0] is the command name. */
#include "reactor/config.h"

int gw_cli_enqueue(gw_config_t *cfg, int argc, char **argv);
int gw_cli_status(gw_config_t *cfg, int argc, char **argv);
/* Runs the production pipeline once without a database (the same code a claimed job runs) and prints the result. */
int gw_cli_analyze(gw_config_t *cfg, int argc, char **argv);

#endif
