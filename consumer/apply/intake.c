/* intake.c: an event's way from its message to its partition's queue, as intake.h says. */
#include "intake.h"

#include "deadletter.h"
#include "log.h"
#include "plan.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define COMP "consumer"

void intake_init(struct intake *in, const char *remote_name, struct remote *remote, struct dlq *dlq,
                 struct state *state, struct metrics *m)
{
    char l[160];
    snprintf(l, sizeof(l), "remote=\"%s\"", remote_name);
    *in = (struct intake){remote_name, remote, dlq, state, NULL, NULL, NULL};
    in->m_skipped = metrics_counter(m, "dxsync_consumer_events_skipped_total",
                                    "Updates that touch no routed field", l);
    in->m_stale = metrics_counter(m, "dxsync_consumer_events_stale_total",
                                  "Events older than one already seen for their key (resends)", l);
    in->m_malformed = metrics_counter(m, "dxsync_consumer_events_malformed_total",
                                      "Messages that are not valid events (also dead-lettered)", l);
}

static void dead_letter(struct intake *in, const struct intake_part *p, struct partq_ev *e,
                        const char *code, const char *message)
{
    struct dlq_why why = {0, code, message, 0};
    dlq_send(in->dlq, p->q, e, p->sp->sub, p->sp->partition, &why);
}

/* Asks the remote's field list whether e writes a field the remote lacks: applies, waits for the
 * list, or is dead-lettered with FIELD_NOT_ON_REMOTE. */
static void check_fields(struct intake *in, const struct intake_part *p, struct partq_ev *e)
{
    if (e->dropped) { /* written; its stored item lacked a field: did the remote lose it? */
        enum remote_check dc =
            remote_check_dropped(in->remote, e->ev.collection, e->dropped, false);
        if (dc == REMOTE_CHECK_WAIT)
            return;
        partq_hold(p->q, e, false);
        if (dc == REMOTE_CHECK_OK) {
            partq_set(p->q, e, PARTQ_DONE);
            return;
        }
        char why[512];
        snprintf(why, sizeof(why),
                 "field %.100s.%.100s does not exist on %.40s (deleted since the consumer read "
                 "its fields?): Directus stored the item without its value; add the field and "
                 "redrive this letter",
                 e->ev.collection, e->dropped, in->remote_name);
        e->dropped = NULL;
        dead_letter(in, p, e, "FIELD_NOT_ON_REMOTE", why);
        return;
    }
    const char *field;
    enum remote_check rc = remote_check_event(in->remote, &e->ev, e->arrived_ms, &field);
    partq_hold(p->q, e, rc == REMOTE_CHECK_WAIT);
    if (rc != REMOTE_CHECK_MISSING)
        return;
    char why[512];
    snprintf(why, sizeof(why),
             "field %.100s.%.100s is routed from %.40s but does not exist on %.40s "
             "(Directus would drop its value without a word): add it there or remove it "
             "from the route",
             e->ev.collection, field, e->ev.source, in->remote_name);
    dead_letter(in, p, e, "FIELD_NOT_ON_REMOTE", why);
}

void intake_recheck(struct intake *in, const struct intake_part *p)
{
    for (size_t i = 0; p->q->held && i < partq_len(p->q); i++) {
        struct partq_ev *e = partq_at(p->q, i);
        if (e->fields_check)
            check_fields(in, p, e);
    }
}

void intake_event(struct intake *in, const struct intake_part *p, struct partq_ev *e)
{
    const struct routes_sub *sub = p->sp->sub;
    char err[512];
    if (event_decode(e->msg->payload, e->msg->len, &e->ev, err, sizeof(err)) == 0) {
        e->decoded = true;
        if (strcmp(e->ev.source, sub->route->from) != 0 ||
            strcmp(e->ev.collection, sub->coll->collection) != 0)
            snprintf(err, sizeof(err), "event of %.100s/%.100s on topic %s", e->ev.source,
                     e->ev.collection, sub->topic);
        else
            err[0] = '\0';
    }
    if (err[0]) {
        metrics_add(in->m_malformed, 1);
        dead_letter(in, p, e, DEADLETTER_MALFORMED, err);
    } else if (e->ev.has_activity_id && p->recent &&
               recent_stale(p->recent, e->ev.key_text, e->ev.activity_id)) {
        partq_set(p->q, e, PARTQ_DONE); /* a resend of what we already have, or older */
        metrics_add(in->m_stale, 1);
        log_debug(COMP,
                  "event=stale_skipped topic=%s partition=%" PRId32 " offset=%" PRId64
                  " key=%s activity_id=%" PRId64,
                  sub->topic, p->sp->partition, e->offset, LOG_Q(e->ev.key_text),
                  e->ev.activity_id);
    } else if (!plan_touches(&e->ev, sub->coll)) {
        partq_set(p->q, e, PARTQ_DONE);
        metrics_add(in->m_skipped, 1);
    } else {
        plan_prune(&e->ev, sub->coll);
        state_observe(in->state, p->sp, &e->ev, e->offset);
        if (!sub->local) /* the remote's own edits are not applied (only repaired) */
            check_fields(in, p, e);
    }
}
