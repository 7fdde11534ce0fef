/* libFuzzer target: the error-event decoder, and re-encoding what it accepts. */
#include "event.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct error_event ev;
    char err[256];
    if (error_event_decode(data, size, &ev, err, sizeof(err)) == 0) {
        char *enc = error_event_encode(&ev);
        struct error_event again;
        if (!enc || error_event_decode(enc, strlen(enc), &again, err, sizeof(err)) != 0)
            abort();
        error_event_free(&again);
        free(enc);
        error_event_free(&ev);
    } else if (!err[0]) {
        abort();
    }
    return 0;
}
