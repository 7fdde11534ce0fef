/* Helpers shared by the unit tests. */
#ifndef DXSYNC_TESTUTIL_H
#define DXSYNC_TESTUTIL_H

#include <stddef.h>

/* 1 in an AddressSanitizer build: the heap is ASan's own there, and glibc's mallinfo2 does not
 * see it (heap figures are then not checked). */
#if defined(__SANITIZE_ADDRESS__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANITIZED 1
#endif
#endif
#ifndef SANITIZED
#define SANITIZED 0
#endif

/* Reads a whole file (malloc'd, NUL-terminated; *len without the NUL). NULL on failure. */
char *testutil_read_file(const char *path, size_t *len);

/* Directory from environment variable env, or fallback (relative to the source tree). */
const char *testutil_dir(const char *env, const char *fallback);

/* Calls fn(path, name, opaque) for every regular file in dir, in name order; returns the count. */
int testutil_each_file(const char *dir, void (*fn)(const char *path, const char *name, void *),
                       void *opaque);

/* A new empty folder under $TMPDIR (or /tmp) into out; 0, or -1. */
int testutil_tmpdir(char *out, size_t len);
/* Removes dir and everything in it (one level of files, as the tests make them). */
void testutil_rmdir(const char *dir);

/* A fixture NAME.hex that its server could not record has NAME.absent beside it, saying why
 * (tests/fixtures/pgoutput/record.sh): the calling test is skipped then (cmocka's skip). */
void testutil_skip_if_absent(const char *hex_path);

/* A loopback TCP port that was free a moment ago (bound, read, closed): nothing listens on it. */
int testutil_free_port(void);

#endif
