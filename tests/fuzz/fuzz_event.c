/* libFuzzer target: the change-event decoder, and re-encoding what it accepts. */
#include "event.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct event ev;
    char err[256];
    if (event_decode(data, size, &ev, err, sizeof(err)) == 0) {
        char *enc = event_encode(&ev);
        struct event again;
        /* what we encode, we must decode */
        if (!enc || event_decode(enc, strlen(enc), &again, err, sizeof(err)) != 0)
            abort();
        event_free(&again);
        free(enc);
        event_free(&ev);
    } else if (!err[0]) {
        abort(); /* a refusal always has a reason */
    }
    return 0;
}
