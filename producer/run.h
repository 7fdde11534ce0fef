/* run: the producer's main loop, wiring source, replication, capture and publish. */
#ifndef DXSYNC_RUN_H
#define DXSYNC_RUN_H

#include "config.h"
#include "metrics.h"

/* Streams changes of inst into Kafka until signals_stop. Returns the exit code: 0 after a
 * clean stop, 1 on a failure that must not be retried (Kafka fatal error, refused delivery,
 * invalid token). */
int producer_run(const struct config *cfg, const struct config_instance *inst, struct metrics *m);

struct source;

/* The sync user's id: inst->sync_user; else the user of the instance token in the database
 * (source_token_user, when src is not NULL); else GET /users/me with the token
 * (directus_user_fetch), retried while Directus is unreachable or answers a 5xx. *how says
 * which ("config", "database", "directus"). 0, or -1 with err: the token refused, another 4xx,
 * no user id, or stopped. */
int producer_sync_user(const struct config_instance *inst, struct source *src, char *id,
                       size_t idlen, const char **how, char *err, size_t errlen);

#endif
