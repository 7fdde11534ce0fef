/* lww: the convergence rule. Every instance's consumer sees the same writes in a different
 * order; whatever the order, the fields it writes are those of the newest write (commit time,
 * then source name), deletes take part, replays and resends never move a field back, and a
 * local edit is written back only when this consumer may have written over it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "clockdb.h"
#include "lww.h"
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const NAMES[] = {"c", "a", "b"};

/* An event of src at commit time us (µs) with activity id aid; fields as "f=v,g=w". */
static struct event mk(const char *src, enum event_action action, const char *key, int64_t us,
                       int64_t aid, const char *fields)
{
    struct event ev;
    memset(&ev, 0, sizeof(ev));
    ev.source = strdup(src);
    ev.collection = strdup("articles");
    ev.action = action;
    ev.key_text = strdup(key);
    ev.key = cJSON_CreateString(key);
    char id[64];
    snprintf(id, sizeof(id), "%s:%lld", src, (long long)aid);
    ev.event_id = strdup(id);
    ev.timestamp = strdup("2026-12-01T00:00:00.000Z");
    ev.has_activity_id = aid != 0;
    ev.activity_id = aid;
    ev.has_commit_us = us != 0;
    ev.commit_us = us;
    ev.lsn = strdup("0/16B3748");
    if (action != EVENT_DELETE) {
        ev.data = cJSON_CreateObject();
        cJSON_AddStringToObject(ev.data, "id", key);
        if (action == EVENT_UPDATE)
            ev.delta = cJSON_CreateObject();
        char buf[256];
        snprintf(buf, sizeof(buf), "%s", fields);
        for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
            char *eq = strchr(tok, '=');
            *eq = '\0';
            cJSON_AddStringToObject(ev.data, tok, eq + 1);
            if (ev.delta)
                cJSON_AddStringToObject(ev.delta, tok, eq + 1);
        }
    }
    return ev;
}

/* The members ev still writes after lww_decide, as "f,g" in their order, or "skip". */
static const char *decide(struct lww *w, struct event *ev, bool local, bool pending)
{
    static char out[256];
    if (lww_decide(w, ev, local, pending) == LWW_SKIP)
        return "skip";
    out[0] = '\0';
    if (ev->action == EVENT_DELETE)
        return "delete";
    const cJSON *m = ev->action == EVENT_UPDATE ? ev->delta : ev->data;
    for (const cJSON *f = m->child; f; f = f->next) {
        if (strcmp(f->string, "id") == 0)
            continue;
        if (out[0])
            strcat(out, ",");
        strcat(out, f->string);
    }
    return out;
}

static int observe_at(struct lww *w, const struct event *ev, int32_t partition, bool foreign,
                      int64_t offset)
{
    struct lww_where at = {partition, offset, foreign};
    return lww_observe(w, ev, &at);
}

static int observe(struct lww *w, const struct event *ev, int32_t partition, bool foreign)
{
    return observe_at(w, ev, partition, foreign, ev->activity_id);
}

static struct lww *new_lww(void)
{
    struct lww *w = lww_new(NAMES, 3);
    assert_non_null(w);
    return w;
}

static void stamps_order_by_time_then_source_then_lsn(void **state)
{
    (void)state;
    struct lww *w = new_lww();
    struct event a = mk("a", EVENT_UPDATE, "k", 100, 1, "t=1");
    struct event b = mk("b", EVENT_UPDATE, "k", 100, 1, "t=1");
    struct event a2 = mk("a", EVENT_UPDATE, "k", 101, 2, "t=1");
    struct event old = mk("c", EVENT_UPDATE, "k", 0, 99, "t=1"); /* an older producer's */
    struct lww_stamp sa, sb, sa2, so;
    lww_stamp_of(w, &a, &sa);
    lww_stamp_of(w, &b, &sb);
    lww_stamp_of(w, &a2, &sa2);
    lww_stamp_of(w, &old, &so);
    assert_true(lww_stamp_cmp(&sa, &sb) < 0);  /* same time: the name decides, a < b */
    assert_true(lww_stamp_cmp(&sb, &sa2) < 0); /* time first */
    assert_true(lww_stamp_cmp(&so, &sa) < 0);  /* no commit time: older than any */
    assert_int_equal(lww_stamp_cmp(&sa, &sa), 0);
    struct event *all[] = {&a, &b, &a2, &old};
    for (int i = 0; i < 4; i++)
        event_free(all[i]);
    lww_free(w);
}

/* Two instances write the same field: whatever the order the consumer sees them in, only the
 * newer is written; the older, seen first, is dropped once the newer is known. */
static void newest_write_of_a_field_wins_in_any_order(void **state)
{
    (void)state;
    for (int order = 0; order < 2; order++) {
        struct lww *w = new_lww();
        struct event older = mk("c", EVENT_UPDATE, "k", 1000, 5, "title=from c");
        struct event newer = mk("a", EVENT_UPDATE, "k", 2000, 9, "title=from a");
        struct event *first = order ? &newer : &older, *second = order ? &older : &newer;
        assert_int_equal(observe(w, first, 0, true), 0);
        assert_int_equal(observe(w, second, 0, true), 0);
        assert_string_equal(decide(w, first, false, false), order ? "title" : "skip");
        assert_string_equal(decide(w, second, false, false), order ? "skip" : "title");
        event_free(&older);
        event_free(&newer);
        lww_free(w);
    }
}

static void equal_times_tie_break_on_the_source_name(void **state)
{
    (void)state;
    struct lww *w = new_lww();
    struct event fa = mk("a", EVENT_UPDATE, "k", 5000, 7, "title=a");
    struct event fc = mk("c", EVENT_UPDATE, "k", 5000, 3, "title=c");
    observe(w, &fc, 0, true);
    observe(w, &fa, 0, true);
    assert_string_equal(decide(w, &fa, false, false), "skip");
    assert_string_equal(decide(w, &fc, false, false), "title"); /* "c" > "a" */
    event_free(&fa);
    event_free(&fc);
    lww_free(w);
}

/* Concurrent writes of different fields both survive: the item merges. */
static void different_fields_merge(void **state)
{
    (void)state;
    struct lww *w = new_lww();
    struct event ea = mk("a", EVENT_UPDATE, "k", 2000, 1, "title=A");
    struct event eb = mk("b", EVENT_UPDATE, "k", 1000, 1, "body=B");
    struct event ec = mk("c", EVENT_UPDATE, "k", 1500, 1, "title=C,rating=3");
    observe(w, &ea, 0, true);
    observe(w, &eb, 0, true);
    observe(w, &ec, 0, true);
    assert_string_equal(decide(w, &ea, false, false), "title");
    assert_string_equal(decide(w, &eb, false, false), "body");
    assert_string_equal(decide(w, &ec, false, false), "rating"); /* its title is older */
    event_free(&ea);
    event_free(&eb);
    event_free(&ec);
    lww_free(w);
}

/* A delete later than every write removes the item; a write older than it never brings it
 * back; a newer write does (and then the older delete is not applied, and the older writes
 * of fields nobody wrote since count again: the item lives, each field its newest write). */
static void deletes_take_part(void **state)
{
    (void)state;
    struct lww *w = new_lww();
    struct event up = mk("a", EVENT_UPDATE, "k", 1000, 1, "title=x");
    struct event del = mk("b", EVENT_DELETE, "k", 2000, 2, "");
    observe(w, &del, 0, true);
    observe(w, &up, 0, true);
    assert_string_equal(decide(w, &del, false, false), "delete");
    assert_string_equal(decide(w, &up, false, false), "skip"); /* no resurrection */
    struct event later = mk("c", EVENT_UPDATE, "k", 3000, 3, "title=back");
    observe(w, &later, 0, true);
    assert_string_equal(decide(w, &later, false, false), "title"); /* brings it back */
    struct event del2 = mk("b", EVENT_DELETE, "k", 2000, 2, "");
    assert_string_equal(decide(w, &del2, false, false), "skip"); /* a resend of the delete */
    struct event create_old = mk("a", EVENT_CREATE, "k", 500, 1, "title=first,body=b");
    observe(w, &create_old, 0, true);
    assert_string_equal(decide(w, &create_old, false, false), "body"); /* its title is older */
    struct event up2 = mk("a", EVENT_UPDATE, "k", 1000, 1, "title=x");
    assert_string_equal(decide(w, &up2, false, false), "skip"); /* title: "later" is newer */
    event_free(&up2);
    struct event *all[] = {&up, &del, &later, &del2, &create_old};
    for (int i = 0; i < 5; i++)
        event_free(all[i]);
    lww_free(w);
}

/* lww_refill_data's fetch in these tests: the events observed, by where they were read (the
 * source's topic and the offset). */
struct served {
    const struct event *evs[8];
    int64_t offsets[8];
    size_t n, fetches;
};

static int serve(void *opaque, const char *source, int64_t offset, struct event *out)
{
    struct served *s = opaque;
    s->fetches++;
    for (size_t i = 0; i < s->n; i++) {
        if (strcmp(s->evs[i]->source, source) != 0 || s->offsets[i] != offset)
            continue;
        const struct event *ev = s->evs[i];
        memset(out, 0, sizeof(*out));
        out->data = ev->data ? cJSON_Duplicate(ev->data, true) : NULL;
        out->delta = ev->delta ? cJSON_Duplicate(ev->delta, true) : NULL;
        return 0;
    }
    return -1;
}

static void observe_served(struct lww *w, struct served *s, const struct event *ev, bool foreign,
                           int64_t offset)
{
    observe_at(w, ev, 0, foreign, offset);
    s->evs[s->n] = ev;
    s->offsets[s->n++] = offset;
}

static const char *data_of(const struct event *ev, const char *field)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(ev->data, field);
    return cJSON_IsString(v) ? v->valuestring : "?";
}

/* An update newer than a delete brings the item back from its data; data's other fields are
 * as its source saw them, so they get their newest writes, read again. */
static void an_update_bringing_an_item_back_gets_the_newest_writes(void **state)
{
    (void)state;
    struct lww *w = new_lww();
    struct served s = {0};
    struct event t_old = mk("c", EVENT_UPDATE, "k", 1000, 20, "title=c-98");
    struct event t_new = mk("a", EVENT_UPDATE, "k", 1001, 31, "title=a-98");
    struct event del = mk("b", EVENT_DELETE, "k", 2000, 16, "");
    struct event back = mk("c", EVENT_UPDATE, "k", 3000, 26, "rating=1082");
    cJSON_AddStringToObject(back.data, "title", "c-98"); /* c had not seen a-98 yet */
    observe_served(w, &s, &t_old, true, 20);
    observe_served(w, &s, &t_new, false, 31);
    observe_served(w, &s, &del, true, 16);
    observe_served(w, &s, &back, true, 26);
    size_t unread;
    assert_int_equal(lww_refill_data(w, &t_new, serve, &s, &unread), 0); /* its own write */
    assert_int_equal(s.fetches, 0);
    assert_string_equal(decide(w, &back, false, false), "rating");
    assert_int_equal(lww_refill_data(w, &back, serve, &s, &unread), 1);
    assert_int_equal(unread, 0);
    assert_string_equal(data_of(&back, "title"), "a-98"); /* read from the remote's topic */
    assert_string_equal(data_of(&back, "rating"), "1082");
    struct event *all[] = {&t_old, &t_new, &del, &back};
    for (int i = 0; i < 4; i++)
        event_free(all[i]);
    lww_free(w);
}

/* The item is deleted on the remote while an update of another source is on its way, before
 * the consumer reads the delete (converge_kill found it): the update creates the item from its
 * data, whose body and rating its source had not seen change yet. They get their newest writes
 * (the remote's own edit, another source's), read once per event, though no delete was seen. */
static void an_item_missing_without_a_seen_delete_gets_the_newest_writes(void **state)
{
    (void)state;
    struct lww *w = new_lww();
    struct served s = {0};
    struct event body_old = mk("b", EVENT_UPDATE, "k", 1000, 10, "body=round 143");
    struct event body_new = mk("b", EVENT_UPDATE, "k", 2000, 11, "body=round 219");
    struct event two = mk("a", EVENT_UPDATE, "k", 2500, 40, "rating=2190,extra=e");
    struct event title = mk("c", EVENT_UPDATE, "k", 3000, 50, "title=c-229");
    cJSON_AddStringToObject(title.data, "body", "round 143"); /* c had not seen round 219 */
    cJSON_AddStringToObject(title.data, "rating", "1802");    /* nor 2190 */
    cJSON_AddStringToObject(title.data, "extra", "old");
    observe_served(w, &s, &body_old, false, 10);
    observe_served(w, &s, &body_new, false, 11);
    observe_served(w, &s, &two, true, 40);
    observe_served(w, &s, &title, true, 50);
    assert_string_equal(decide(w, &title, false, false), "title");
    size_t unread;
    assert_int_equal(lww_refill_data(w, &title, serve, &s, &unread), 3);
    assert_int_equal(unread, 0);
    assert_int_equal(s.fetches, 2); /* rating and extra come from one read */
    assert_string_equal(data_of(&title, "body"), "round 219");
    assert_string_equal(data_of(&title, "rating"), "2190");
    assert_string_equal(data_of(&title, "extra"), "e");
    assert_string_equal(data_of(&title, "title"), "c-229");
    /* a write that cannot be read leaves data's value, counted */
    struct event body_newer = mk("a", EVENT_UPDATE, "k", 4000, 60, "body=unread");
    observe_at(w, &body_newer, 0, true, 60); /* not served */
    assert_int_equal(lww_refill_data(w, &title, serve, &s, &unread), 2);
    assert_int_equal(unread, 1);
    assert_string_equal(data_of(&title, "body"), "round 219");
    struct event *all[] = {&body_old, &body_new, &two, &title, &body_newer};
    for (int i = 0; i < 5; i++)
        event_free(all[i]);
    lww_free(w);
}

/* A create writes only the fields nobody wrote since; a replay of the whole history, seen in
 * any order, writes each field only from its newest write. */
static void replays_never_move_a_field_back(void **state)
{
    (void)state;
    struct lww *w = new_lww();
    struct event h[] = {
        mk("a", EVENT_CREATE, "k", 1000, 1, "title=t1,body=b1,rating=1"),
        mk("a", EVENT_UPDATE, "k", 2000, 2, "title=t2"),
        mk("b", EVENT_UPDATE, "k", 3000, 1, "body=b3"),
        mk("a", EVENT_UPDATE, "k", 4000, 3, "title=t4"),
    };
    for (int i = 0; i < 4; i++)
        observe(w, &h[i], 0, true);
    /* the replay, after all of them are known */
    struct event r[] = {
        mk("a", EVENT_CREATE, "k", 1000, 1, "title=t1,body=b1,rating=1"),
        mk("a", EVENT_UPDATE, "k", 2000, 2, "title=t2"),
        mk("b", EVENT_UPDATE, "k", 3000, 1, "body=b3"),
        mk("a", EVENT_UPDATE, "k", 4000, 3, "title=t4"),
    };
    const char *want[] = {"rating", "skip", "body", "title"};
    for (int i = 0; i < 4; i++) {
        observe(w, &r[i], 0, true); /* seen again: changes nothing */
        assert_string_equal(decide(w, &r[i], false, false), want[i]);
    }
    for (int i = 0; i < 4; i++) {
        event_free(&h[i]);
        event_free(&r[i]);
    }
    lww_free(w);
}

/* The remote's own writes are written back only when this consumer may have written over
 * them: it wrote the key within the margin of the local commit, or before a restart. */
static void local_edits_are_repaired_only_when_overwritten(void **state)
{
    (void)state;
    struct lww *w = new_lww();
    int64_t t0 = 1764547200000LL; /* ms */
    struct event foreign = mk("a", EVENT_UPDATE, "k", t0 * 1000, 1, "title=from a");
    observe(w, &foreign, 0, true);
    assert_string_equal(decide(w, &foreign, false, false), "title");
    assert_true(lww_claim(w, &foreign, &foreign));
    assert_false(lww_claim(w, &foreign, &w)); /* held: another partition waits */
    lww_release(w, &foreign, &foreign, true, t0 + 50);
    assert_true(lww_claim(w, &foreign, &w));
    lww_release(w, &foreign, &w, false, 0);

    /* a local edit 20 ms after the commit of a's write: the write landed after it */
    struct event local = mk("b", EVENT_UPDATE, "k", (t0 + 20) * 1000, 1, "title=from b");
    observe(w, &local, 0, false);
    assert_string_equal(decide(w, &local, true, false), "title");
    /* a local edit long after this consumer's last write: nothing to repair */
    struct event later = mk("b", EVENT_UPDATE, "k", (t0 + 60000) * 1000, 2, "title=later");
    observe(w, &later, 0, false);
    assert_string_equal(decide(w, &later, true, false), "skip");
    /* a local edit that a newer foreign write beats: not written back */
    struct event newer = mk("c", EVENT_UPDATE, "k", (t0 + 70000) * 1000, 4, "title=from c");
    struct event loc2 = mk("b", EVENT_UPDATE, "k", (t0 + 65000) * 1000, 3, "title=b2");
    observe(w, &newer, 0, true);
    observe(w, &loc2, 0, false);
    lww_release(w, &newer, NULL, true, t0 + 70010);
    assert_string_equal(decide(w, &loc2, true, false), "skip");
    struct event *all[] = {&foreign, &local, &later, &newer, &loc2};
    for (int i = 0; i < 5; i++)
        event_free(all[i]);
    lww_free(w);

    /* after a restart: a local edit already in the log, on a key with foreign writes */
    w = new_lww();
    struct event f = mk("a", EVENT_CREATE, "k2", 1000, 1, "title=x");
    struct event l = mk("b", EVENT_UPDATE, "k2", 2000, 1, "title=y");
    observe(w, &f, 1, true);
    observe(w, &l, 1, false);
    assert_string_equal(decide(w, &l, true, true), "title");
    assert_string_equal(decide(w, &l, true, false), "skip"); /* taken live: no write known */
    struct event l3 = mk("b", EVENT_UPDATE, "k3", 2000, 2, "title=z");
    observe(w, &l3, 1, false); /* no foreign write of k3 */
    assert_string_equal(decide(w, &l3, true, true), "skip");
    event_free(&f);
    event_free(&l);
    event_free(&l3);
    lww_free(w);
}

/* Many writes of one key keep a handful of stamps; a revoked partition's keys go. */
static void memory_stays_small_and_partitions_drop(void **state)
{
    (void)state;
    struct lww *w = new_lww();
    for (int i = 1; i <= 1000; i++) {
        char f[64];
        snprintf(f, sizeof(f), "title=%d,body=%d", i, i);
        struct event ev = mk(i % 2 ? "a" : "c", EVENT_UPDATE, "hot", 1000 + i, i, f);
        observe(w, &ev, 0, true);
        event_free(&ev);
    }
    size_t one = lww_bytes(w);
    for (int i = 0; i < 20000; i++) {
        char key[32];
        snprintf(key, sizeof(key), "key-%d", i);
        struct event ev = mk("a", EVENT_CREATE, key, 1000 + i, i + 1, "title=t,body=b,rating=r");
        observe(w, &ev, i % 3, true);
        event_free(&ev);
    }
    assert_int_equal(lww_keys(w), 20001);
    size_t per_key = (lww_bytes(w) - one) / 20000;
    print_message("  %zu bytes per key of three fields\n", per_key);
    /* as malloc takes them (usable size and chunk header): the entry and its key, the stamps,
     * their read positions, the fields and the bucket; 252 on glibc x86-64 */
    assert_true(per_key < 256);
    lww_drop_partition(w, 1);
    assert_int_equal(lww_keys(w), 20001 - 6667);
    lww_free(w);
}

/* ---- with a store ---- */

/* A checkpoint of w into db: the dirty clocks, committed, then clean. */
static void store_checkpoint(struct lww *w, struct clockdb *db)
{
    char err[512];
    assert_int_equal(clockdb_begin(db, err, sizeof(err)), 0);
    assert_int_equal(lww_checkpoint_write(w, err, sizeof(err)), 0);
    assert_int_equal(clockdb_commit(db, err, sizeof(err)), 0);
    lww_checkpoint_done(w);
}

static struct clockdb *temp_store(char *dir, size_t len)
{
    assert_int_equal(testutil_tmpdir(dir, len), 0);
    struct clockdb *db;
    char err[512];
    assert_true(clockdb_open(&db, dir, 64 << 20, 3, err, sizeof(err)) >= 0);
    return db;
}

/* The cache holds what its bound allows; an evicted key is read back from the store and
 * decides as before; a dirty key is never evicted before a checkpoint wrote it. */
static void the_cache_stays_in_its_bound_and_reads_back_what_it_evicted(void **state)
{
    (void)state;
    char dir[256];
    struct clockdb *db = temp_store(dir, sizeof(dir));
    struct lww *w = new_lww();
    size_t bound = 256 << 10;
    lww_attach(w, db, bound);
    for (int i = 0; i < 5000; i++) {
        char key[32], f[64];
        snprintf(key, sizeof(key), "key-%d", i);
        snprintf(f, sizeof(f), "title=t%d,body=b", i);
        struct event ev = mk(i % 2 ? "a" : "c", EVENT_CREATE, key, 1000000 + i, i + 1, f);
        observe(w, &ev, i % 3, true);
        event_free(&ev);
    }
    /* nothing stored yet: every key is dirty, and stays */
    lww_trim(w);
    assert_int_equal(lww_keys(w), 5000);
    assert_true(lww_dirty_bytes(w) > bound);
    store_checkpoint(w, db);
    assert_int_equal(lww_dirty_bytes(w), 0);
    lww_trim(w);
    print_message("  %zu of 5000 keys in %zu bytes (bound %zu)\n", lww_keys(w), lww_bytes(w),
                  bound);
    assert_true(lww_bytes(w) <= bound);
    assert_true(lww_keys(w) < 5000);
    struct clockdb_stats st;
    clockdb_stats(db, &st);
    assert_int_equal(st.keys, 5000);
    /* key-7 was evicted (the oldest go first): an older write of its title is superseded,
     * a newer one is written */
    struct event old = mk("a", EVENT_UPDATE, "key-7", 1000000, 9000, "title=older");
    assert_string_equal(decide(w, &old, false, false), "skip");
    struct event newer = mk("a", EVENT_UPDATE, "key-7", 2000000, 9001, "title=newer,body=x");
    assert_string_equal(decide(w, &newer, false, false), "title,body");
    event_free(&old);
    event_free(&newer);
    /* a key held by a batch is not evicted either */
    struct event held = mk("a", EVENT_UPDATE, "key-4999", 3000000, 9002, "title=h");
    observe(w, &held, 1, true);
    assert_true(lww_claim(w, &held, &held));
    store_checkpoint(w, db);
    lww_attach(w, db, 1); /* evict everything that may go */
    lww_trim(w);
    assert_int_equal(lww_keys(w), 1);
    assert_false(lww_may_claim(w, &held, w));
    lww_release(w, &held, &held, true, 5);
    event_free(&held);
    lww_free(w);
    clockdb_close(db);
    testutil_rmdir(dir);
}

/* What a checkpoint stored comes back whole in a new process: stamps, deletes, the foreign
 * mark and this consumer's last write; what changed after it (a crash before the next commit)
 * is not there, and reading those events again gives the same clocks. */
static void a_new_process_reads_the_clocks_of_the_last_checkpoint(void **state)
{
    (void)state;
    char dir[256];
    struct clockdb *db = temp_store(dir, sizeof(dir));
    struct lww *w = new_lww();
    lww_attach(w, db, 1 << 20);
    int64_t t0 = 1764547200000LL;
    struct event f = mk("a", EVENT_UPDATE, "k", t0 * 1000, 1, "title=from a,body=b1");
    struct event del = mk("c", EVENT_DELETE, "gone", 2000, 2, "");
    struct event l = mk("b", EVENT_UPDATE, "k", (t0 + 20) * 1000, 3, "title=from b");
    observe(w, &f, 0, true);
    observe(w, &del, 1, true);
    assert_true(lww_claim(w, &f, &f));
    lww_release(w, &f, &f, true, t0 + 50); /* written */
    store_checkpoint(w, db);
    observe(w, &l, 0, false); /* after the checkpoint: lost with the process */
    lww_free(w);
    clockdb_close(db);

    char err[512];
    assert_true(clockdb_open(&db, dir, 64 << 20, 3, err, sizeof(err)) >= 0);
    w = new_lww();
    lww_attach(w, db, 1 << 20);
    assert_int_equal(lww_keys(w), 0);
    struct event older = mk("c", EVENT_UPDATE, "k", (t0 - 5) * 1000, 4, "title=old,body=old");
    assert_string_equal(decide(w, &older, false, false), "skip");
    struct event back = mk("a", EVENT_CREATE, "gone", 1000, 5, "title=x");
    assert_string_equal(decide(w, &back, false, false), "skip"); /* the delete is newer */
    observe(w, &l, 0, false);                                    /* read again after the restart */
    /* this consumer wrote a's title 30 ms after b's edit committed: b's edit is repaired */
    assert_string_equal(decide(w, &l, true, false), "title");
    struct event *all[] = {&f, &del, &l, &older, &back};
    for (int i = 0; i < 5; i++)
        event_free(all[i]);
    lww_free(w);
    clockdb_close(db);
    testutil_rmdir(dir);
}

/* The horizon: an event that committed no later than its partition's floor plus the allowed
 * skew may be older than a write the clocks lack; it is not written before the partition's
 * history is read, unless newer writes it knows own all of it anyway. */
static void events_older_than_the_floor_wait_for_the_history(void **state)
{
    (void)state;
    struct lww *w = new_lww();
    lww_set_margin(w, 5000000); /* 5 s */
    int64_t floor = 1764547200000000LL;
    lww_set_floor(w, 2, floor);
    assert_true(lww_floor(w, 2) == floor);
    assert_true(lww_floor(w, 1) == LWW_COMPLETE);
    struct event recent = mk("a", EVENT_UPDATE, "k", floor + 6000000, 1, "title=new");
    struct event late = mk("c", EVENT_UPDATE, "k", floor - 3600000000LL, 2, "title=l,body=l");
    struct event edge = mk("c", EVENT_UPDATE, "k2", floor + 5000000, 3, "title=e");
    struct event snap = mk("a", EVENT_SNAPSHOT, "k3", 0, 0, "title=s");
    struct event gone = mk("c", EVENT_DELETE, "k4", floor - 1, 4, "");
    struct event other = mk("c", EVENT_UPDATE, "k5", floor - 1, 5, "title=p1");
    observe(w, &recent, 2, true);
    observe(w, &late, 2, true);
    observe(w, &edge, 2, true);
    observe(w, &snap, 2, true);
    observe(w, &gone, 2, true);
    observe(w, &other, 1, true);
    assert_int_equal(lww_decide(w, &recent, false, false), LWW_APPLY);
    /* late: its title is superseded by what the clocks know; its body may be too */
    assert_int_equal(lww_decide(w, &late, false, false), LWW_HISTORY);
    assert_null(cJSON_GetObjectItemCaseSensitive(late.delta, "title"));
    assert_non_null(cJSON_GetObjectItemCaseSensitive(late.delta, "body"));
    assert_int_equal(lww_decide(w, &edge, false, false), LWW_HISTORY); /* within the skew */
    assert_int_equal(lww_decide(w, &snap, false, false), LWW_HISTORY);
    assert_int_equal(lww_decide(w, &gone, false, false), LWW_HISTORY);
    assert_int_equal(lww_decide(w, &other, false, false), LWW_APPLY); /* partition 1 is whole */
    struct event older = mk("c", EVENT_UPDATE, "k", floor - 7200000000LL, 6, "title=o");
    observe(w, &older, 2, true);
    assert_int_equal(lww_decide(w, &older, false, false), LWW_SKIP); /* known newer: no wait */
    /* the remote's own edit, committed before the floor and published late (its producer was
     * stopped): whether this consumer, or the member before it, wrote another instance's value
     * over it is known only from the history */
    struct event local = mk("b", EVENT_UPDATE, "k6", floor - 60000000, 7, "title=mine");
    observe(w, &local, 2, false);
    assert_int_equal(lww_decide(w, &local, true, true), LWW_HISTORY);
    assert_int_equal(lww_decide(w, &local, true, false), LWW_SKIP); /* not before assignment */
    /* the history read: partition 2 is whole */
    lww_set_floor(w, 2, LWW_COMPLETE);
    assert_int_equal(lww_decide(w, &late, false, false), LWW_APPLY);
    assert_int_equal(lww_decide(w, &snap, false, false), LWW_APPLY);
    assert_int_equal(lww_decide(w, &local, true, true), LWW_SKIP); /* no other instance wrote k6 */
    struct event over = mk("a", EVENT_UPDATE, "k6", floor - 90000000, 8, "title=theirs");
    observe(w, &over, 2, true); /* found in the history: older, maybe written over the edit */
    assert_int_equal(lww_decide(w, &local, true, true), LWW_APPLY);
    struct event *all[] = {&recent, &late, &edge, &snap, &gone, &other, &older, &local, &over};
    for (int i = 0; i < 9; i++)
        event_free(all[i]);
    lww_free(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(stamps_order_by_time_then_source_then_lsn),
        cmocka_unit_test(newest_write_of_a_field_wins_in_any_order),
        cmocka_unit_test(equal_times_tie_break_on_the_source_name),
        cmocka_unit_test(different_fields_merge),
        cmocka_unit_test(deletes_take_part),
        cmocka_unit_test(replays_never_move_a_field_back),
        cmocka_unit_test(an_update_bringing_an_item_back_gets_the_newest_writes),
        cmocka_unit_test(an_item_missing_without_a_seen_delete_gets_the_newest_writes),
        cmocka_unit_test(local_edits_are_repaired_only_when_overwritten),
        cmocka_unit_test(memory_stays_small_and_partitions_drop),
        cmocka_unit_test(the_cache_stays_in_its_bound_and_reads_back_what_it_evicted),
        cmocka_unit_test(a_new_process_reads_the_clocks_of_the_last_checkpoint),
        cmocka_unit_test(events_older_than_the_floor_wait_for_the_history),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
