/* redrive: `dxsync-consumer --remote NAME dlq redrive`: re-applies the remote's dead letters
 * through the apply path, once each.
 *
 * The letters are read from <prefix>.dlq.<remote> by group <prefix>.redrive.<remote>, from
 * where the last redrive stopped to the end as it is at the start. Before anything is written,
 * the convergence clocks of the letters' keys are built from the topics they came from (every
 * source topic of the collection into the remote, and the remote's own when it publishes the
 * collection, the partitions of those keys, from the first offset to the end): a letter then
 * writes only the fields it is still the newest write of (lww.h), and nothing when the remote
 * holds newer writes of them all ("superseded"). Each remaining letter is applied alone as the
 * remote's sync user (upsert, as the consumer does); one that fails again is dead-lettered anew
 * (new letter and apply_failed error event, its original's place kept). An outage of the remote
 * stops the redrive after a minute of retries, keeping what was not handled for the next run.
 *
 * Filters (--code, --key, --since) select letters; those passed over stay for a later redrive:
 * the group's position moves over the letters handled without a gap, and the offsets handled
 * beyond it are kept in the commit's metadata, so no letter is applied twice. */
#ifndef DXSYNC_REDRIVE_H
#define DXSYNC_REDRIVE_H

#include "config.h"

#include <stdint.h>
#include <stdio.h>

struct redrive_filter {
    const char *code; /* NULL: any */
    const char *key;  /* NULL: any */
    int64_t since_ms; /* -1: any */
};

/* Returns 0 when every selected letter applied (or was superseded), 1 when one failed again or
 * the redrive could not finish (the reason on stderr). */
int redrive_run(const struct config *cfg, const char *remote, const struct redrive_filter *f,
                FILE *out);

/* The offsets kept in a commit's metadata ("redriven:41,45"): parses meta into a sorted list.
 * Returns how many (at most max). */
size_t redrive_meta_parse(const char *meta, size_t len, int64_t *offs, size_t max);
/* Writes the list as metadata (the offsets > committed only); -1 when it does not fit. */
int redrive_meta_format(const int64_t *offs, size_t n, int64_t committed, char *buf, size_t len);

#endif
