/* signals: the first SIGTERM/SIGINT asks for a clean stop, a second one exits at once. */
#ifndef DXSYNC_SIGNALS_H
#define DXSYNC_SIGNALS_H

#include <signal.h>

/* Set to 1 by the first SIGTERM or SIGINT. The only mutable global besides the logger's. */
extern volatile sig_atomic_t signals_stop;

/* Installs the handlers and ignores SIGPIPE. Returns 0 or -1. */
int signals_install(void);

#endif
