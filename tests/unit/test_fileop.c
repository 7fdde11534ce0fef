/* fileop: the requests of one file event (the source's record, the remote's, the transfer, the
 * routed fields), waiting for the source's upload, a file gone from the source, outages of
 * either side and a transfer cut short; plan_file_content tells which events bring bytes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "fileop.h"
#include "plan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ID "3f0c5d4e-4c1b-4a53-9d2e-8f6a1b2c3d4e"

static char *route_fields[] = {"title", "folder"};
static const struct config_collection coll = {
    .collection = "directus_files", .fields = route_fields, .nfields = 2};

static struct event ev;
static struct apply_item item;
static struct fileop op;

static void load(const char *action, const char *data, const char *delta)
{
    char json[2048], err[256];
    snprintf(
        json, sizeof(json),
        "{\"version\":1,\"event_id\":\"a:7\",\"source\":\"a\",\"collection\":\"directus_files\","
        "\"action\":\"%s\",\"key\":\"" ID "\",\"data\":%s,\"delta\":%s,\"user\":null,"
        "\"timestamp\":\"2026-01-01T00:00:00Z\",\"activity_id\":7}",
        action, data, delta);
    if (event_decode(json, strlen(json), &ev, err, sizeof(err)))
        fail_msg("decode: %s", err);
}

static void begin(bool metadata_only)
{
    memset(&item, 0, sizeof(item));
    item.ev = &ev;
    assert_int_equal(
        fileop_init(&op, &ev, &coll, &item, plan_file_content(&ev, &coll), metadata_only, 3, 42),
        0);
}

static int reset(void **state)
{
    (void)state;
    fileop_free(&op);
    event_free(&ev);
    memset(&ev, 0, sizeof(ev));
    return 0;
}

static void expect(enum fileop_step step, const char *method, const char *path, bool to_source)
{
    struct fileop_request req;
    assert_int_equal(fileop_next(&op, &req), 1);
    assert_int_equal(req.step, step);
    assert_string_equal(req.method, method);
    assert_string_equal(req.path, path);
    assert_int_equal(req.to_source, to_source);
}

static void response(struct http_response *r, CURLcode curl, long status, const char *code,
                     const char *body)
{
    memset(r, 0, sizeof(*r));
    r->curl = curl;
    r->status = status;
    r->retry_after_s = -1;
    r->body = body ? strdup(body) : NULL;
    r->len = body ? strlen(body) : 0;
    snprintf(r->code, sizeof(r->code), "%s", code ? code : "");
    snprintf(r->message, sizeof(r->message), "message of %ld", status);
    r->klass = http_classify(curl, status, code);
}

static enum fileop_verdict answer(long status, const char *code, const char *body, int64_t *delay)
{
    struct http_response r;
    response(&r, status ? CURLE_OK : CURLE_COULDNT_CONNECT, status, code, body);
    int64_t d = -1;
    enum fileop_verdict v = fileop_answer(&op, &r, &d);
    if (delay)
        *delay = d;
    http_response_free(&r);
    return v;
}

static enum fileop_verdict transferred(CURLcode up_curl, long up_status, int64_t received,
                                       bool complete)
{
    struct http_response up;
    response(&up, up_curl, up_status, NULL, up_status == 200 ? "{\"data\":{}}" : NULL);
    struct xfer_result dl = {.expected = 5000, .received = received, .complete = complete};
    int64_t d;
    enum fileop_verdict v = fileop_transferred(&op, &up, &dl, &d);
    http_response_free(&up);
    return v;
}

#define SOURCE_PATH "/files/" ID "?fields=id,filesize,uploaded_on,type,filename_download"
#define RECORD(size, up)                                                                           \
    "{\"data\":{\"id\":\"" ID "\",\"filesize\":" size ",\"uploaded_on\":" up                       \
    ",\"type\":\"image/png\",\"filename_download\":\"cover.png\"}}"

/* The next request is GET of the source's record (source) or of the remote's (remote); its
 * answer is status with body. */
static enum fileop_verdict source(long status, const char *code, const char *body)
{
    expect(FILEOP_SOURCE, "GET", SOURCE_PATH, true);
    return answer(status, code, body, NULL);
}

static enum fileop_verdict remote(long status, const char *code, const char *body)
{
    expect(FILEOP_REMOTE, "GET", "/files/" ID "?fields=id", false);
    return answer(status, code, body, NULL);
}

static void assert_applied(void)
{
    struct fileop_request req;
    assert_int_equal(fileop_next(&op, &req), 0);
    assert_int_equal(item.state, APPLY_APPLIED);
}

/* Which events bring bytes: creates and snapshots, updates naming a content field; not deletes,
 * not metadata edits, nothing of another collection. */
static void content_events_are_told_apart(void **state)
{
    (void)state;
    load("create", "{\"id\":\"" ID "\",\"title\":\"t\",\"uploaded_on\":null}", "{\"title\":\"t\"}");
    assert_true(plan_file_content(&ev, &coll));
    assert_true(plan_touches(&ev, &coll));
    event_free(&ev);
    load("update", "{\"id\":\"" ID "\",\"title\":\"t\"}", "{\"filename_disk\":\"x.pdf\"}");
    assert_true(plan_file_content(&ev, &coll));
    assert_true(plan_touches(&ev, &coll)); /* no routed field, but new bytes */
    plan_prune(&ev, &coll);
    assert_non_null(cJSON_GetObjectItemCaseSensitive(ev.delta, "filename_disk"));
    event_free(&ev);
    load("update", "{\"id\":\"" ID "\",\"title\":\"t\"}",
         "{\"title\":\"t\",\"modified_on\":\"x\"}");
    assert_false(plan_file_content(&ev, &coll));
    event_free(&ev);
    load("delete", "null", "null");
    assert_false(plan_file_content(&ev, &coll));
    event_free(&ev);
    load("create", "{\"id\":\"" ID "\"}", "{}");
    static char *art_fields[] = {"filename_disk"};
    static const struct config_collection art = {
        .collection = "articles", .fields = art_fields, .nfields = 1};
    assert_false(plan_file_content(&ev, &art));
}

/* A create: the source's record (its upload is done), the remote lacks the file, the bytes go
 * by POST /files with the id, then the routed fields by PATCH. */
static void a_create_moves_the_bytes_then_the_fields(void **state)
{
    (void)state;
    load("create",
         "{\"id\":\"" ID "\",\"title\":\"Cover\",\"folder\":null,\"uploaded_on\":null,"
         "\"filesize\":null}",
         "{\"title\":\"Cover\"}");
    begin(false);
    assert_int_equal(source(200, NULL, RECORD("\"5000\"", "\"2026-01-01T00:00:01.000Z\"")),
                     FILEOP_NEXT);
    assert_int_equal(remote(403, "FORBIDDEN", NULL), FILEOP_NEXT);
    struct fileop_request req;
    assert_int_equal(fileop_next(&op, &req), 1);
    assert_int_equal(req.step, FILEOP_TRANSFER);
    assert_string_equal(req.method, "POST");
    assert_string_equal(req.path, "/files");
    assert_string_equal(req.src_path, "/assets/" ID);
    assert_true(req.spec.create);
    assert_string_equal(req.spec.id, ID);
    assert_int_equal(req.spec.size, 5000);
    assert_string_equal(req.spec.type, "image/png");
    assert_string_equal(req.spec.filename, "cover.png");
    assert_int_equal(transferred(CURLE_OK, 200, 5000, true), FILEOP_NEXT);
    assert_true(op.transferred);
    expect(FILEOP_PATCH, "PATCH", "/files/" ID, false);
    assert_int_equal(fileop_next(&op, &req), 1);
    assert_string_equal(req.body, "{\"title\":\"Cover\",\"folder\":null}");
    assert_int_equal(answer(200, NULL, "{\"data\":{}}", NULL), FILEOP_NEXT);
    assert_applied();
}

/* The source has not stored the bytes yet: a create whose record has no uploaded_on, a
 * replacement whose record still has the event's own. The event waits (FILEOP_NOT_READY). */
static void an_upload_in_progress_waits(void **state)
{
    (void)state;
    load("create", "{\"id\":\"" ID "\",\"uploaded_on\":null}", "{}");
    begin(false);
    assert_int_equal(source(200, NULL, RECORD("null", "null")), FILEOP_DONE);
    assert_int_equal(item.state, APPLY_FAILED);
    assert_string_equal(item.code, FILEOP_NOT_READY);
    reset(NULL);

    load("update", "{\"id\":\"" ID "\",\"uploaded_on\":\"2026-01-01T00:00:01.000Z\"}",
         "{\"filename_disk\":\"" ID ".pdf\"}");
    begin(false);
    assert_int_equal(source(200, NULL, RECORD("3000", "\"2026-01-01T00:00:01Z\"")), FILEOP_DONE);
    assert_string_equal(item.code, FILEOP_NOT_READY);
    reset(NULL);

    /* done: a replacement goes by PATCH of the existing file */
    load("update", "{\"id\":\"" ID "\",\"uploaded_on\":\"2026-01-01T00:00:01.000Z\"}",
         "{\"filename_disk\":\"" ID ".pdf\"}");
    begin(false);
    assert_int_equal(source(200, NULL, RECORD("5000", "\"2026-01-01T00:00:09.000Z\"")),
                     FILEOP_NEXT);
    assert_int_equal(remote(200, NULL, "{\"data\":{\"id\":\"" ID "\"}}"), FILEOP_NEXT);
    expect(FILEOP_TRANSFER, "PATCH", "/files/" ID, false);
}

/* A metadata edit: the remote's record, then only the delta's routed fields. When the remote
 * lacks the file, the bytes come first (and then every routed field). */
static void a_metadata_edit_moves_no_bytes(void **state)
{
    (void)state;
    load("update", "{\"id\":\"" ID "\",\"title\":\"New\",\"folder\":null}", "{\"title\":\"New\"}");
    begin(false);
    assert_int_equal(remote(200, NULL, "{\"data\":{\"id\":\"" ID "\"}}"), FILEOP_NEXT);
    struct fileop_request req;
    assert_int_equal(fileop_next(&op, &req), 1);
    assert_int_equal(req.step, FILEOP_PATCH);
    assert_string_equal(req.body, "{\"title\":\"New\"}");
    assert_int_equal(answer(200, NULL, "{\"data\":{}}", NULL), FILEOP_NEXT);
    assert_applied();
    assert_false(op.transferred);
    reset(NULL);

    load("update", "{\"id\":\"" ID "\",\"title\":\"New\",\"folder\":null}", "{\"title\":\"New\"}");
    begin(false);
    assert_int_equal(remote(403, "FORBIDDEN", NULL), FILEOP_NEXT);
    assert_int_equal(source(200, NULL, RECORD("5000", "\"2026-01-01T00:00:01Z\"")), FILEOP_NEXT);
    expect(FILEOP_TRANSFER, "POST", "/files", false);
    assert_int_equal(transferred(CURLE_OK, 200, 5000, true), FILEOP_NEXT);
    assert_int_equal(fileop_next(&op, &req), 1);
    assert_string_equal(req.body, "{\"title\":\"New\",\"folder\":null}");
    reset(NULL);

    /* a repair of the remote's own edit never moves bytes: a file the remote lacks is left */
    load("update", "{\"id\":\"" ID "\",\"title\":\"New\"}", "{\"title\":\"New\"}");
    begin(true);
    assert_int_equal(remote(403, "FORBIDDEN", NULL), FILEOP_NEXT);
    assert_applied();
}

/* A 403 for the source's record: a file deleted since when the source still lists files (done,
 * nothing written), a sync user without access otherwise (a failure that says so). */
static void a_file_gone_from_the_source_is_skipped(void **state)
{
    (void)state;
    load("create", "{\"id\":\"" ID "\",\"uploaded_on\":null}", "{}");
    begin(false);
    assert_int_equal(source(403, "FORBIDDEN", NULL), FILEOP_NEXT);
    expect(FILEOP_PROBE, "GET", "/files?fields=id&limit=1", true);
    assert_int_equal(answer(200, NULL, "{\"data\":[]}", NULL), FILEOP_NEXT);
    assert_applied();
    assert_true(op.gone);
    reset(NULL);

    load("create", "{\"id\":\"" ID "\",\"uploaded_on\":null}", "{}");
    begin(false);
    assert_int_equal(source(403, "FORBIDDEN", NULL), FILEOP_NEXT);
    expect(FILEOP_PROBE, "GET", "/files?fields=id&limit=1", true);
    assert_int_equal(answer(403, "FORBIDDEN", NULL, NULL), FILEOP_DONE);
    assert_int_equal(item.state, APPLY_FAILED);
    assert_string_equal(item.code, "SOURCE_FORBIDDEN");
}

/* Either side down: the source's outage and a download cut short start again from the source's
 * record; the remote's outage retries as an outage and asks again whether it has the file. A
 * folder the remote lacks fails the fields (the caller parks it) after the bytes moved. */
static void outages_start_again(void **state)
{
    (void)state;
    load("create", "{\"id\":\"" ID "\",\"title\":\"T\",\"folder\":\"f1\",\"uploaded_on\":null}",
         "{}");
    begin(false);
    int64_t delay = -1;
    expect(FILEOP_SOURCE, "GET", SOURCE_PATH, true);
    assert_int_equal(answer(0, NULL, NULL, &delay), FILEOP_RETRY_SOURCE);
    assert_true(delay > 0);
    assert_int_equal(source(200, NULL, RECORD("5000", "\"2026-01-01T00:00:01Z\"")), FILEOP_NEXT);
    expect(FILEOP_REMOTE, "GET", "/files/" ID "?fields=id", false);
    assert_int_equal(answer(503, "SERVICE_UNAVAILABLE", NULL, &delay), FILEOP_RETRY_REMOTE);
    assert_int_equal(remote(403, "FORBIDDEN", NULL), FILEOP_NEXT);
    expect(FILEOP_TRANSFER, "POST", "/files", false);
    /* the download stopped halfway: the upload was aborted */
    assert_int_equal(transferred(CURLE_ABORTED_BY_CALLBACK, 0, 2000, false), FILEOP_RETRY_SOURCE);
    assert_int_equal(source(200, NULL, RECORD("5000", "\"2026-01-01T00:00:01Z\"")), FILEOP_NEXT);
    assert_int_equal(remote(403, "FORBIDDEN", NULL), FILEOP_NEXT);
    expect(FILEOP_TRANSFER, "POST", "/files", false);
    /* the remote went away mid-upload */
    assert_int_equal(transferred(CURLE_SEND_ERROR, 0, 3000, false), FILEOP_RETRY_REMOTE);
    assert_int_equal(remote(200, NULL, "{\"data\":{\"id\":\"" ID "\"}}"), FILEOP_NEXT);
    expect(FILEOP_TRANSFER, "PATCH", "/files/" ID, false); /* a half-made create is replaced */
    assert_int_equal(transferred(CURLE_OK, 200, 5000, true), FILEOP_NEXT);
    expect(FILEOP_PATCH, "PATCH", "/files/" ID, false);
    struct http_response r;
    response(&r, CURLE_OK, 400, "INVALID_FOREIGN_KEY", NULL);
    snprintf(r.field, sizeof(r.field), "folder");
    snprintf(r.value, sizeof(r.value), "f1");
    assert_int_equal(fileop_answer(&op, &r, &delay), FILEOP_DONE);
    http_response_free(&r);
    assert_int_equal(item.state, APPLY_FAILED);
    assert_string_equal(item.field, "folder");
    assert_true(op.transferred);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(content_events_are_told_apart, reset),
        cmocka_unit_test_teardown(a_create_moves_the_bytes_then_the_fields, reset),
        cmocka_unit_test_teardown(an_upload_in_progress_waits, reset),
        cmocka_unit_test_teardown(a_metadata_edit_moves_no_bytes, reset),
        cmocka_unit_test_teardown(a_file_gone_from_the_source_is_skipped, reset),
        cmocka_unit_test_teardown(outages_start_again, reset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
