/* check: everything that would stop the producer of one instance, found before it runs. */
#ifndef DXSYNC_CHECK_H
#define DXSYNC_CHECK_H

#include "config.h"
#include "report.h"

#include <stdio.h>

/* Checks the instance's database (reachable, wal_level, privileges for the slot and the
 * publication, an existing slot or publication that is wrong), its Directus (reachable, token
 * valid, not an admin's) and every collection routed from it (exists, accountability "all",
 * every routed field a real column). Prints "ok: ..." for what passes and "problem: ..." for
 * each finding to out. Returns the number of problems. */
int producer_check(const struct config *cfg, const struct config_instance *inst, FILE *out);

/* The server's version (PQserverVersion, and its text): a problem below PostgreSQL 13, a warning
 * above 18 (untested), ok between. */
void check_server_version(struct report *r, int num, const char *text);

#endif
