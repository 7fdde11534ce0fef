/* report: ok/problem lines of the check commands and their shared Directus checks. */
#include "report.h"

#include "directus.h"
#include "log.h"

#include <stdarg.h>

static void line(struct report *r, const char *tag, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

static void line(struct report *r, const char *tag, const char *fmt, va_list ap)
{
    char buf[2048];
    vsnprintf(buf, sizeof(buf), fmt, ap);
    log_redact(buf, sizeof(buf));
    fprintf(r->out, "%s: %s\n", tag, buf);
}

void report_ok(struct report *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    line(r, "ok", fmt, ap);
    va_end(ap);
}

void report_problem(struct report *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    line(r, "problem", fmt, ap);
    va_end(ap);
    r->problems++;
}

void report_warn(struct report *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    line(r, "warning", fmt, ap);
    va_end(ap);
}

void report_summary(FILE *out, int problems)
{
    fprintf(out, "%d problem%s found\n", problems, problems == 1 ? "" : "s");
}

void report_directus_version(struct report *r, const char *url, int major, const char *text)
{
    if (major < 0)
        report_warn(r,
                    "directus %s does not say its version (GET /server/info): dxsync is tested "
                    "on Directus %d and %d",
                    url, DIRECTUS_MAJOR_OLDEST, DIRECTUS_MAJOR_NEWEST);
    else if (major < DIRECTUS_MAJOR_OLDEST)
        report_problem(r,
                       "directus %s is version %s, which dxsync does not support: it runs on "
                       "Directus %d and %d (it needs access policies, which came with Directus "
                       "11): upgrade Directus",
                       url, text, DIRECTUS_MAJOR_OLDEST, DIRECTUS_MAJOR_NEWEST);
    else if (major > DIRECTUS_MAJOR_NEWEST)
        report_warn(r,
                    "directus %s is version %s, newer than those dxsync is tested on (%d and "
                    "%d): run its check and a test route before relying on it",
                    url, text, DIRECTUS_MAJOR_OLDEST, DIRECTUS_MAJOR_NEWEST);
    else
        report_ok(r, "directus %s is version %s (supported: %d and %d)", url, text,
                  DIRECTUS_MAJOR_OLDEST, DIRECTUS_MAJOR_NEWEST);
}

bool report_directus(struct report *r, struct http_client *c, const char *name, const char *url)
{
    char err[768], ver[64];
    if (directus_ping(c, err, sizeof(err))) {
        report_problem(r, "directus %s is not reachable: %s", url, err);
        return false;
    }
    report_ok(r, "directus %s answers", url);
    struct directus_user u;
    enum directus_answer a = directus_user_fetch(c, &u, err, sizeof(err));
    if (a == DIRECTUS_AUTH) {
        report_problem(r, "instances[%s].token is not valid on %s (%s)", name, url, err);
        return false;
    }
    if (a != DIRECTUS_OK) {
        report_problem(r, "directus %s: %s", url, err);
        return false;
    }
    report_ok(r, "the token of %s is valid (user %s)", name, u.id);
    report_directus_version(r, url, directus_version_fetch(c, ver, sizeof(ver)), ver);
    int admin = directus_admin_fetch(c);
    if (admin == 1)
        report_problem(r,
                       "the token of %s belongs to an admin: give dxsync a user of its own with a "
                       "non-admin policy (least privilege; an admin also gets unknown fields "
                       "silently dropped)",
                       name);
    else if (admin == 0)
        report_ok(r, "the token of %s is not an admin's", name);
    else
        log_warn("check", "event=check_skipped what=admin_access instance=%s", name);
    return true;
}
