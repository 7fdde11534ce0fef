/* libFuzzer target: the configuration loader (JSON, ${ENV} expansion, validation). */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int once;
    if (!once) {
        setenv("DXSYNC_FUZZ_TOKEN", "fuzz-token", 1);
        once = 1;
    }
    struct config cfg;
    char err[512];
    err[0] = '\0';
    if (config_load_buffer((const char *)data, size, &cfg, err, sizeof(err)) == 0)
        config_free(&cfg);
    else if (!err[0])
        abort();
    return 0;
}
