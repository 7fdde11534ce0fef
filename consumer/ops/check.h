/* check: validates the configuration against the live remote, as its sync user: reachable,
 * token valid and not an admin's (report_directus), every routed collection and field present
 * (and a real column), create/read/update/delete permitted on them. Lines of report.h: one
 * "ok: ..." per check passed, one "problem: ..." per finding. */
#ifndef DXSYNC_CHECK_H
#define DXSYNC_CHECK_H

#include "config.h"
#include "directus.h"
#include "report.h"

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdio.h>

/* From a GET /fields/<collection> answer (directus_fields_parse): routed fields of coll that are
 * missing on the remote or that are aliases (one-to-many, many-to-many, ...) rather than
 * columns, one problem each, named after route. Returns how many. Pure. */
int check_fields(const struct directus_fields *fields, const struct config_route *route,
                 const struct config_collection *coll, struct report *r);

/* From a GET /permissions/me answer's data object: create, read, update or delete missing on
 * the collection, or a routed field the sync user may not write, one problem each. Returns how
 * many. Pure. */
int check_permissions(const cJSON *perms, const struct config_route *route,
                      const struct config_collection *coll, struct report *r);

/* From GET /relations/<collection> answers' data arrays of the source and the remote: each
 * routed field that is a many-to-one on the source must be one on the remote too, to the same
 * collection, with the same "on delete" (the remote's foreign key does what the source's did
 * to children when a parent is deleted: README, related collections), one problem each; and a
 * warning when no route from the source to the remote carries the collection it points at
 * (cfg given). Returns the problems. Pure. */
int check_relations(const cJSON *src, const cJSON *dst, const struct config *cfg,
                    const struct config_route *route, const struct config_collection *coll,
                    struct report *r);

/* Runs every check against the remote, lines to out; *problems gets their count. Returns 0, or
 * -1 with err when the check could not run (out of memory, a topic name too long). */
int check_remote(const struct config *cfg, const char *remote, FILE *out, int *problems, char *err,
                 size_t errlen);

#endif
