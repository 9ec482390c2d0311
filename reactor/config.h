#ifndef GW_CONFIG_H
#define GW_CONFIG_H
/* The configuration engine. A caller declares a table of variables (name, type, default, bounds or choices, help, and
 * the offset of the field each fills in the caller's struct); the engine reads them from the environment and a .env
 * file (the real environment wins), checks bounds and choices, registers secrets with the logger, and prints --help
 * and a markdown table from the same rows. It knows no variable by name: the daemon's table is handlers/settings.c. */
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

typedef enum en_gw_config_type_t {
    GW_CFG_STRING, /* free text into a char *; "" is a value */
    GW_CFG_LONG,   /* integer within [min, max] into a long; "" means the default */
    GW_CFG_ENUM,   /* one of a '|'-separated list (case-insensitive, stored as listed) into a char *; "" = default */
} gw_config_type_t;

typedef enum en_gw_config_secret_t {
    GW_CFG_PUBLIC,     /* may be logged */
    GW_CFG_SECRET,     /* the value is registered with the logger for redaction */
    GW_CFG_SECRET_URL, /* the value and the password inside it (URI user:pw@host, or keyword password=pw) */
} gw_config_secret_t;

typedef struct st_gw_config_var_t {
    const char *name;
    gw_config_type_t type;
    const char *def;     /* NULL = unset unless given */
    long min, max;       /* GW_CFG_LONG */
    const char *choices; /* GW_CFG_ENUM */
    unsigned required;   /* a mask: must be set when (required & need) != 0, `need` being what the command about to run
                          * declares to gw_config_load (one that opens no database need not name one); ~0u = always */
    gw_config_secret_t secret;
    size_t offset; /* of the field (char * or long, by type) in the caller's struct */
    const char *help;
    /* Optional: a check of the value beyond type, bounds and choices (a path, a URL); called after those pass. Returns 0,
     * or -1 after writing why into err (the engine prefixes the variable's name). */
    int (*check)(const char *value, char *err, size_t errlen);
} gw_config_var_t;

typedef struct st_gw_config_table_t {
    const gw_config_var_t *vars;
    size_t nvars;
} gw_config_table_t;

/* Fills the fields of `out` the table names (zeroed first). On error writes one line naming the variable into err and returns -1;
 * gw_config_free must be called either way. */
int gw_config_load(const gw_config_table_t *t, void *out, const char *dotenv_path, unsigned need, char *err, size_t errlen);
void gw_config_free(const gw_config_table_t *t, void *out);
/* --help: one entry per variable with its default (or bounds, choices, "required"). */
void gw_config_print_help(const gw_config_table_t *t, FILE *out);
/* The same as a markdown table (variable | default | meaning) for the documentation. */
void gw_config_print_markdown(const gw_config_table_t *t, FILE *out);

/* .env parsing, exposed for tests and fuzzing: calls cb for each KEY=VALUE (export prefix, comments, single and
 * double quotes with \n \" \\ escapes in double quotes; no variable expansion). Returns the number of lines rejected. */
int gw_dotenv_parse(const char *buf, size_t len, void (*cb)(const char *key, const char *value, void *data), void *data);

#endif
