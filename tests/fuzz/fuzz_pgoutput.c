/* libFuzzer target: the pgoutput decoder and the capture of activity/revision rows behind it.
 * The input is split into messages by a two-byte big-endian length prefix, so one input can
 * carry a Begin, Relations, Inserts and a Commit. */
#include "capture.h"
#include "pgoutput.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *fields[] = {"title", "rating"};
static struct capture_column columns[] = {{"id", CAPTURE_TEXT}, {"rating", CAPTURE_INTEGER}};
static struct capture_collection coll = {.name = "articles",
                                         .pk = "id",
                                         .pk_type = CAPTURE_TEXT,
                                         .fields = fields,
                                         .nfields = 2,
                                         .columns = columns,
                                         .ncolumns = 2};

static enum capture_lookup lookup(void *opaque, const char *name,
                                  const struct capture_collection **out)
{
    (void)opaque;
    *out = strcmp(name, "articles") == 0 ? &coll : NULL;
    return *out ? CAPTURE_SYNCED : CAPTURE_NOT_SYNCED;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct pgoutput_decoder *d = pgoutput_decoder_new();
    struct capture_config cfg = {.source = "a", .sync_user = "u", .lookup = lookup};
    struct capture *c = capture_new(&cfg);
    char err[256];
    /* the whole input as one message */
    struct pgoutput_msg msg;
    pgoutput_decode(d, data, size, &msg, err, sizeof(err));
    /* then as a stream of length-prefixed messages */
    size_t off = 0;
    while (off + 2 <= size) {
        size_t len = (size_t)data[off] << 8 | data[off + 1];
        off += 2;
        if (len > size - off)
            len = size - off;
        uint8_t *copy = malloc(len ? len : 1); /* exact size: reads past it are caught */
        memcpy(copy, data + off, len);
        if (pgoutput_decode(d, copy, len, &msg, err, sizeof(err)) == 0) {
            struct capture_txn *txn;
            if (capture_feed(c, &msg, &txn, err, sizeof(err)) == 0 && txn)
                for (size_t i = 0; i < txn->nevents; i++)
                    free(event_encode(&txn->events[i].ev));
        }
        free(copy);
        off += len;
    }
    capture_free(c);
    pgoutput_decoder_free(d);
    return 0;
}
