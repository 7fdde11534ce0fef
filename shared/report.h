/* report: the lines of the check commands, one shape for every program: "ok: ..." for what
 * passes, "problem: ..." for each finding (counted); main.c closes with report_summary. The
 * Directus part both checks share (reachable, token valid, not an admin's) is here too. */
#ifndef DXSYNC_REPORT_H
#define DXSYNC_REPORT_H

#include "http.h"

#include <stdbool.h>
#include <stdio.h>

struct report {
    FILE *out;
    int problems;
};

/* One line "ok: <fmt>" / "problem: <fmt>" (counted) / "warning: <fmt>" (works, but something
 * will not sync as the user may expect; not counted), with registered secrets masked. */
void report_ok(struct report *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void report_problem(struct report *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void report_warn(struct report *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The closing line: "0 problems found", "1 problem found", ... */
void report_summary(FILE *out, int problems);

/* The Directus majors dxsync is tested on (tests/matrix.sh; README's supported versions). */
#define DIRECTUS_MAJOR_OLDEST 11
#define DIRECTUS_MAJOR_NEWEST 12

/* The version a Directus reports (major -1: it did not say): a problem below 11, a warning above
 * 12 or when unknown, ok between. */
void report_directus_version(struct report *r, const char *url, int major, const char *text);

/* Checks the Directus of instance `name` at url through c (blocking): it answers its ping, the
 * token is valid (GET /users/me), its version is supported, and it is not an admin's (GET
 * /policies/me/globals). True when the first two hold, so that the caller may go on asking
 * Directus. */
bool report_directus(struct report *r, struct http_client *c, const char *name, const char *url);

#endif
