/* testutil.c: files, directories and ports for the unit tests. */
#include "testutil.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

char *testutil_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap + 1);
    size_t r;
    while (buf && (r = fread(buf + n, 1, cap - n, f)) > 0) {
        n += r;
        if (n == cap) {
            cap *= 2;
            char *nb = realloc(buf, cap + 1);
            if (!nb) {
                free(buf);
                buf = NULL;
            }
            buf = nb;
        }
    }
    fclose(f);
    if (!buf)
        return NULL;
    buf[n] = '\0';
    *len = n;
    return buf;
}

const char *testutil_dir(const char *env, const char *fallback)
{
    const char *v = getenv(env);
    return v && *v ? v : fallback;
}

static int cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int testutil_each_file(const char *dir, void (*fn)(const char *path, const char *name, void *),
                       void *opaque)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    char *names[512];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 512)
        if (e->d_name[0] != '.')
            names[n++] = strdup(e->d_name);
    closedir(d);
    qsort(names, (size_t)n, sizeof(char *), cmp);
    int count = 0;
    for (int i = 0; i < n; i++) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        struct stat st;
        if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
            fn(path, names[i], opaque);
            count++;
        }
        free(names[i]);
    }
    return count;
}

int testutil_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t l = sizeof(a);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) ||
        getsockname(fd, (struct sockaddr *)&a, &l)) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    return ntohs(a.sin_port);
}

int testutil_tmpdir(char *out, size_t len)
{
    const char *base = getenv("TMPDIR");
    if (snprintf(out, len, "%s/dxsync-test.XXXXXX", base && *base ? base : "/tmp") >= (int)len)
        return -1;
    return mkdtemp(out) ? 0 : -1;
}

void testutil_rmdir(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            char path[4096];
            snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
            unlink(path);
        }
        closedir(d);
    }
    rmdir(dir);
}

void testutil_skip_if_absent(const char *hex_path)
{
    size_t n = strlen(hex_path);
    char path[4200], why[256] = "";
    if (n < 4 || strcmp(hex_path + n - 4, ".hex") != 0)
        return;
    snprintf(path, sizeof(path), "%.*s.absent", (int)(n - 4), hex_path);
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    if (!fgets(why, sizeof(why), f))
        why[0] = '\0';
    fclose(f);
    print_message("skipped: %s: %s", path, why);
    skip();
}
