/* signals: the first SIGTERM/SIGINT asks for a clean stop, a second one exits at once, and so
 * does a clean stop still running after the stop deadline. */
#ifndef DXSYNC_SIGNALS_H
#define DXSYNC_SIGNALS_H

#include <signal.h>

/* Set to 1 by the first SIGTERM or SIGINT. The only mutable global besides the logger's. */
extern volatile sig_atomic_t signals_stop;

/* Set to 1 by SIGHUP (systemctl reload): re-read the configuration (app_reload_wanted in
 * cli.h); the one taking it sets it back to 0. */
extern volatile sig_atomic_t signals_reload;

/* Installs the handlers and ignores SIGPIPE. Returns 0 or -1. */
int signals_install(void);

/* Seconds a clean stop may take after the first signal (0: no limit). Past them the process
 * writes event=stop_timeout to stderr and exits with status 1, without committing: a stop
 * that hangs (a broker that never answers, a library waiting on a lock) does not keep the
 * process, and what it had not committed is read again at the next start. Uses SIGALRM. */
void signals_set_stop_deadline(unsigned seconds);

#endif
