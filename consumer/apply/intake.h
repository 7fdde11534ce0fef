/* intake: one message taken from an assigned partition becomes an event in that partition's
 * queue (partq): a malformed one, or one on the wrong topic, is dead-lettered; a resend of what
 * the partition already had (recent.h) and an update touching no routed field are settled at
 * once; any other is pruned to the routed fields, observed by the clocks (state.h) and, unless
 * it is the remote's own edit, checked against the remote's field list (remote.h): it waits for
 * the list, or is dead-lettered as FIELD_NOT_ON_REMOTE. */
#ifndef DXSYNC_INTAKE_H
#define DXSYNC_INTAKE_H

#include "dlq.h"
#include "metrics.h"
#include "partq.h"
#include "recent.h"
#include "remote.h"
#include "state.h"

struct intake {
    const char *remote_name;
    struct remote *remote;
    struct dlq *dlq;
    struct state *state;
    struct metric *m_skipped, *m_stale, *m_malformed;
};

/* What intake needs of one partition. */
struct intake_part {
    struct state_part *sp; /* its topic, number and clocks */
    struct partq *q;
    struct recent *recent; /* or NULL */
};

/* remote, dlq, state and m must outlive in. */
void intake_init(struct intake *in, const char *remote_name, struct remote *remote, struct dlq *dlq,
                 struct state *state, struct metrics *m);
/* e was just queued (partq_push) for its message: decodes and sorts it (see the top). */
void intake_event(struct intake *in, const struct intake_part *p, struct partq_ev *e);
/* Events that waited for a field list: checks them again now that it may be there. */
void intake_recheck(struct intake *in, const struct intake_part *p);

#endif
