/* libFuzzer: the .env reader. Every key handed out must be a valid variable name and every value a C string. */
#include "fuzz.h"
#include "reactor/config.h"
#include <ctype.h>

static void on_pair(const char *key, const char *value, void *data)
{
    size_t *n = data;
    FUZZ_ASSERT(key[0] != '\0' && !isdigit((unsigned char)key[0]) && strlen(key) < 128);
    for (const char *p = key; *p != '\0'; p++)
        FUZZ_ASSERT(isalnum((unsigned char)*p) || *p == '_');
    FUZZ_ASSERT(value != NULL);
    (void)strlen(value);
    (*n)++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_quiet();
    char *buf = malloc(size ? size : 1);
    FUZZ_ASSERT(buf != NULL);
    memcpy(buf, data, size);
    size_t pairs = 0, lines = 1;
    for (size_t i = 0; i < size; i++)
        lines += data[i] == '\n';
    int rejected = gw_dotenv_parse(buf, size, on_pair, &pairs);
    FUZZ_ASSERT(rejected >= 0 && pairs + (size_t)rejected <= lines);
    free(buf);
    return 0;
}
