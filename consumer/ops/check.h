/* check: validates the configuration against the live remote, as its sync user: reachable,
 * token valid and not an admin's, every routed collection and field present (and a real
 * column), create/read/update/delete permitted on them. One line per finding. */
#ifndef DXSYNC_CHECK_H
#define DXSYNC_CHECK_H

#include "config.h"

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdio.h>

/* Findings are written as lines into out; the functions return how many they wrote. */

/* From a GET /fields/<collection> answer's data array: routed fields that are missing or that
 * are aliases (one-to-many, many-to-many, ...) rather than columns. Pure. */
int check_fields(const cJSON *fields, const char *remote, const struct config_collection *coll,
                 FILE *out);

/* From a GET /permissions/me answer's data object: create, read, update or delete missing on
 * the collection, or a routed field the sync user may not write. Pure. */
int check_permissions(const cJSON *perms, const char *remote, const struct config_collection *coll,
                      FILE *out);

/* Runs every check against the remote. Returns the exit code: 0 without findings, 1 with. */
int check_remote(const struct config *cfg, const char *remote, FILE *out);

#endif
