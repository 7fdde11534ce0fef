#include "signals.h"

#include <string.h>
#include <unistd.h>

volatile sig_atomic_t signals_stop;

static void on_signal(int sig)
{
    (void)sig;
    if (signals_stop) {
        static const char msg[] = "second signal: stopping at once\n";
        ssize_t r = write(STDERR_FILENO, msg, sizeof(msg) - 1);
        (void)r;
        _exit(1);
    }
    signals_stop = 1;
}

int signals_install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGTERM, &sa, NULL) != 0 || sigaction(SIGINT, &sa, NULL) != 0)
        return -1;
    sa.sa_handler = SIG_IGN;
    return sigaction(SIGPIPE, &sa, NULL);
}
