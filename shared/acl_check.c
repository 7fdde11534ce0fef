/* acl_check: the Kafka part of the check commands (acl.h). What a program needs (its acl_set,
 * the very list `acls` prints) is tried against the cluster as the configured principal,
 * without writing anything: it connects and authenticates; each topic is described (missing
 * ones: may it create them? kafka_create_topics with validate_only); each group's committed
 * offsets are read. Write cannot be tried without writing: `acls` says what to grant. */
#include "acl.h"

#include "kafka.h"
#include "log.h"
#include "util.h"

#include <stdio.h>
#include <string.h>

#define CHECK_TIMEOUT_MS 10000

/* One topic's metadata: its error (0: it exists) and partition count. */
static rd_kafka_resp_err_t describe(rd_kafka_t *rk, const char *topic, int *partitions)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, rkt, &md, CHECK_TIMEOUT_MS);
    rd_kafka_topic_destroy(rkt);
    *partitions = 0;
    if (e)
        return e;
    e = md->topic_cnt == 1 ? md->topics[0].err : RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART;
    if (!e)
        *partitions = md->topics[0].partition_cnt;
    rd_kafka_metadata_destroy(md);
    return e;
}

static void check_topic(struct report *r, rd_kafka_t *rk, const struct config *cfg,
                        const struct acl_entry *t, const char *principal)
{
    int parts = 0;
    rd_kafka_resp_err_t e = describe(rk, t->name, &parts);
    if (!e) {
        report_ok(r, "kafka: topic %s exists (%d partition%s) and %s may describe it", t->name,
                  parts, parts == 1 ? "" : "s", principal);
        return;
    }
    if (e == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED) {
        report_problem(r,
                       "kafka: %s may not describe topic %s (%s): grant it what `acls` prints "
                       "(%s%s and Describe)",
                       principal, t->name, rd_kafka_err2name(e), t->ops & ACL_READ ? "Read" : "",
                       t->ops & ACL_WRITE ? "Write" : "");
        return;
    }
    if (e != RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
        report_problem(r, "kafka: topic %s: %s", t->name, rd_kafka_err2str(e));
        return;
    }
    if (!t->created) {
        report_problem(r, "kafka: topic %s does not exist", t->name);
        return;
    }
    /* may it create the topic? CreateTopics with validate_only: nothing is made */
    const char *one[] = {t->name};
    char why[1024];
    if (kafka_create_topics(rk, cfg, one, 1, NULL, true, CHECK_TIMEOUT_MS, why, sizeof(why)) == 0)
        report_ok(r, "kafka: topic %s does not exist yet; %s may create it (it will at start)",
                  t->name, principal);
    else
        report_problem(r, "kafka: %s", why);
}

/* A group: its committed offsets for partition 0 of a topic it reads. Kafka gives a principal
 * without Describe on the group no coordinator, so that shows as a time-out. */
static void check_group(struct report *r, const struct config *cfg, const struct acl_set *s,
                        const struct acl_entry *g, const char *principal)
{
    const char *topic = NULL;
    for (size_t i = 0; i < s->n && !topic; i++)
        if (s->e[i].kind == ACL_TOPIC && (s->e[i].ops & ACL_READ))
            topic = s->e[i].name;
    if (!topic)
        return;
    struct kafka_state st = {.component = "check"};
    char err[1024];
    rd_kafka_t *rk = kafka_reader_new(cfg, &st, g->name, err, sizeof(err));
    if (!rk) {
        report_problem(r, "kafka: group %s: %s", g->name, err);
        return;
    }
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, 0);
    rd_kafka_resp_err_t e = rd_kafka_committed(rk, l, CHECK_TIMEOUT_MS);
    if (!e && l->elems[0].err && l->elems[0].err != RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
        e = l->elems[0].err;
    if (!e)
        report_ok(r, "kafka: %s may read group %s", principal, g->name);
    else if (e == RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED || e == RD_KAFKA_RESP_ERR__TIMED_OUT)
        report_problem(r,
                       "kafka: group %s gave %s no answer in %d s (%s): a principal without Read "
                       "on the group gets none; grant what `acls` prints",
                       g->name, principal, CHECK_TIMEOUT_MS / 1000, rd_kafka_err2name(e));
    else
        report_problem(r, "kafka: group %s: %s", g->name, rd_kafka_err2str(e));
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_destroy(rk);
}

void acl_check(struct report *r, const struct config *cfg, const struct acl_set *s)
{
    char pbuf[300];
    const char *principal = "this client (no sasl.username)";
    for (size_t i = 0; i < cfg->kafka.nproperties; i++)
        if (strcmp(cfg->kafka.properties[i].key, "sasl.username") == 0)
            principal = acl_principal(cfg, NULL, NULL, pbuf, sizeof(pbuf));
    struct kafka_state st = {.component = "check"};
    char err[1024];
    rd_kafka_conf_t *conf = kafka_conf_new(cfg, &st, NULL, NULL, err, sizeof(err));
    rd_kafka_t *rk =
        conf ? kafka_client_new(RD_KAFKA_PRODUCER, conf, "kafka", err, sizeof(err)) : NULL;
    if (!rk) {
        report_problem(r, "kafka: %s", err);
        return;
    }
    /* connected and authenticated: the cluster's brokers answer */
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e;
    /* in slices of a second: a refused handshake or password is reported at once and does not
     * get better by waiting, so two seconds after one the check moves on */
    int64_t start = util_mono_ms();
    for (;;) {
        e = rd_kafka_metadata(rk, 0, NULL, &md, 1000);
        rd_kafka_poll(rk, 100); /* serves the error callback: st.last_error */
        if ((e != RD_KAFKA_RESP_ERR__TIMED_OUT && e != RD_KAFKA_RESP_ERR__TRANSPORT) ||
            util_mono_ms() - start >= CHECK_TIMEOUT_MS ||
            (st.last_error[0] && util_mono_ms() - start >= 2000))
            break;
        if (e == RD_KAFKA_RESP_ERR__TRANSPORT)
            util_sleep_ms(200, NULL);
    }
    if (e) {
        report_problem(r, "kafka: no answer from %s (%s)%s%s", cfg->kafka.brokers,
                       rd_kafka_err2str(e), st.last_error[0] ? ": " : "", st.last_error);
        rd_kafka_destroy(rk);
        return;
    }
    report_ok(r, "kafka: %s answers (%d broker%s) and %s is let in", cfg->kafka.brokers,
              md->broker_cnt, md->broker_cnt == 1 ? "" : "s", principal);
    rd_kafka_metadata_destroy(md);
    for (size_t i = 0; i < s->n; i++)
        if (s->e[i].kind == ACL_TOPIC)
            check_topic(r, rk, cfg, &s->e[i], principal);
    rd_kafka_destroy(rk);
    for (size_t i = 0; i < s->n; i++)
        if (s->e[i].kind == ACL_GROUP)
            check_group(r, cfg, s, &s->e[i], principal);
}
