/* verify: `dxsync-consumer --remote NAME verify [--collection C] [--repair] [--json]`: are the
 * source and the remote in sync right now?
 *
 * For every route into the remote and each of its collections: the source's items are read in
 * pages sorted by key (SEARCH, keyset pagination: bounded memory), and for each page the remote's
 * items of those keys; then the remote's pages and the source's items of their keys. Items are
 * compared on the routed fields. One summary per collection (compared, missing on the remote,
 * extra on the remote, different) and one line per differing key (the first 50 per collection;
 * all with --json, one JSON object per line). Progress goes to stderr when it is a terminal.
 *
 * --repair publishes, for each missing or different key, the source's current row as a
 * `snapshot` event into the source's topic (with the time of the repair as its commit time, so
 * that it is the newest write of its fields), and a `delete` for each extra key when the remote
 * does not publish the collection itself (else its own items are extra by right). The repairs
 * travel the normal path and stay in the audit log. */
#ifndef DXSYNC_VERIFY_H
#define DXSYNC_VERIFY_H

#include "config.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdio.h>

/* Exit status: 0 when every collection agrees, 3 when some differ (after --repair: the
 * differences found, repairs published), 1 on errors (the reason on stderr). */
int verify_run(const struct config *cfg, const char *remote, const char *collection, bool repair,
               bool json, FILE *out);

#endif
