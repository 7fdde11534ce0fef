/* partq.c: the queue is an array window q[head..tail); a settled prefix moves head, and the
 * array is compacted only when it must grow. */
#include "partq.h"

#include <stdlib.h>
#include <string.h>

void partq_init(struct partq *q, partq_release_fn release, void *opaque)
{
    memset(q, 0, sizeof(*q));
    q->last_offset = -1;
    q->next_offset = -1;
    q->release = release;
    q->release_opaque = opaque;
}

static void ev_free(struct partq *q, struct partq_ev *e)
{
    if (q->release)
        q->release(e, q->release_opaque);
    if (e->msg)
        rd_kafka_message_destroy(e->msg);
    if (e->decoded)
        event_free(&e->ev);
    free(e);
}

void partq_free(struct partq *q)
{
    for (size_t i = q->head; i < q->tail; i++)
        ev_free(q, q->q[i]);
    free(q->q);
    q->q = NULL;
    q->head = q->tail = q->cap = 0;
    q->waiting = q->unsettled = q->held = q->parked = 0;
}

static int reserve(struct partq *q)
{
    if (q->tail < q->cap)
        return 0;
    if (q->head > 0) {
        memmove(q->q, q->q + q->head, (q->tail - q->head) * sizeof(*q->q));
        q->tail -= q->head;
        q->head = 0;
        return 0;
    }
    size_t cap = q->cap ? q->cap * 2 : 64;
    struct partq_ev **nq = realloc(q->q, cap * sizeof(*nq));
    if (!nq)
        return -1;
    q->q = nq;
    q->cap = cap;
    return 0;
}

struct partq_ev *partq_push(struct partq *q, rd_kafka_message_t *msg, int64_t offset,
                            int64_t now_ms, bool *oom)
{
    *oom = false;
    if (offset <= q->last_offset)
        return NULL;
    struct partq_ev *e = calloc(1, sizeof(*e));
    if (!e || reserve(q)) {
        free(e);
        *oom = true;
        return NULL;
    }
    e->msg = msg;
    e->offset = offset;
    e->arrived_ms = now_ms;
    e->state = PARTQ_WAITING;
    q->q[q->tail++] = e;
    q->last_offset = offset;
    q->waiting++;
    q->unsettled++;
    return e;
}

size_t partq_len(const struct partq *q)
{
    return q->tail - q->head;
}

struct partq_ev *partq_at(const struct partq *q, size_t i)
{
    return q->q[q->head + i];
}

void partq_set(struct partq *q, struct partq_ev *e, enum partq_state state)
{
    if (e->state == state)
        return;
    if (e->state == PARTQ_WAITING)
        q->waiting--;
    if (state == PARTQ_WAITING)
        q->waiting++;
    if (e->state == PARTQ_DONE)
        q->unsettled++;
    if (state == PARTQ_DONE)
        q->unsettled--;
    if (e->parked && (state == PARTQ_DONE || state == PARTQ_DEAD)) {
        e->parked = false;
        q->parked--;
    }
    e->state = state;
}

void partq_park(struct partq *q, struct partq_ev *e)
{
    if (!e->parked) {
        e->parked = true;
        q->parked++;
    }
    partq_set(q, e, PARTQ_WAITING);
}

void partq_hold(struct partq *q, struct partq_ev *e, bool hold)
{
    if (e->fields_check == hold)
        return;
    e->fields_check = hold;
    if (hold)
        q->held++;
    else
        q->held--;
}

int64_t partq_advance(struct partq *q)
{
    int64_t next = -1;
    while (q->head < q->tail && q->q[q->head]->state == PARTQ_DONE) {
        struct partq_ev *e = q->q[q->head];
        next = e->offset + 1;
        q->q[q->head++] = NULL;
        ev_free(q, e);
    }
    if (q->head == q->tail)
        q->head = q->tail = 0;
    if (next >= 0)
        q->next_offset = next;
    return next;
}

int64_t partq_resume_offset(const struct partq *q)
{
    for (size_t i = q->head; i < q->tail; i++)
        if (q->q[i]->state != PARTQ_DONE)
            return q->q[i]->offset;
    return q->last_offset >= 0 ? q->last_offset + 1 : -1;
}
