/* import: the hook extension's configuration (data_sync_remote_sources) as dxsync routes. */
#ifndef DXSYNC_IMPORT_H
#define DXSYNC_IMPORT_H

#include "config.h"

#include <stdio.h>

/* Reads the published rows of data_sync_remote_sources (url, schema, users_notification) from
 * the database of inst and prints {"routes": [...]} to out: one route from inst to the
 * configured instance whose url matches each row's url. Rows whose url matches no instance, or
 * whose schema is not the extension's shape, are reported on err_out. Tokens (api_key) are
 * never read. Returns the exit code: 0 when every published row became a route, 1 otherwise. */
int producer_import(const struct config *cfg, const struct config_instance *inst, FILE *out,
                    FILE *err_out);

#endif
