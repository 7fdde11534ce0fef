#include "signals.h"

#include <string.h>
#include <unistd.h>

volatile sig_atomic_t signals_stop;
volatile sig_atomic_t signals_reload;
static volatile sig_atomic_t stop_deadline_s;

static void say(const char *msg, size_t len)
{
    ssize_t r = write(STDERR_FILENO, msg, len);
    (void)r;
}

/* Async-signal-safe: write(2) and _exit(2) only. */
static void on_alarm(int sig)
{
    (void)sig;
    static const char msg[] =
        "error event=stop_timeout hint=\"the clean stop did not finish within its deadline: "
        "exiting at once; what was not committed is read again at the next start\"\n";
    say(msg, sizeof(msg) - 1);
    _exit(1);
}

static void on_signal(int sig)
{
    (void)sig;
    if (signals_stop) {
        static const char msg[] = "second signal: stopping at once\n";
        say(msg, sizeof(msg) - 1);
        _exit(1);
    }
    signals_stop = 1;
    if (stop_deadline_s > 0)
        alarm((unsigned)stop_deadline_s);
}

static void on_hup(int sig)
{
    (void)sig;
    signals_reload = 1;
}

void signals_set_stop_deadline(unsigned seconds)
{
    stop_deadline_s = (sig_atomic_t)seconds;
}

int signals_install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGTERM, &sa, NULL) != 0 || sigaction(SIGINT, &sa, NULL) != 0)
        return -1;
    sa.sa_handler = on_alarm;
    if (sigaction(SIGALRM, &sa, NULL) != 0)
        return -1;
    sa.sa_handler = on_hup;
    if (sigaction(SIGHUP, &sa, NULL) != 0)
        return -1;
    sa.sa_handler = SIG_IGN;
    return sigaction(SIGPIPE, &sa, NULL);
}
