#include "admin.h"

#include "kafka.h"
#include "log.h"
#include "routes.h"

#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <stdlib.h>
#include <string.h>

#define COMP             "consumer"
#define ADMIN_TIMEOUT_MS 10000

int64_t admin_status_lag(const struct admin_status_row *r)
{
    if (r->end < 0)
        return -1;
    int64_t from = r->committed >= 0 ? r->committed : (r->low >= 0 ? r->low : 0);
    return r->end > from ? r->end - from : 0;
}

size_t admin_status_print(FILE *out, const struct admin_status_row *rows, size_t n)
{
    int w = 5;
    for (size_t i = 0; i < n; i++) {
        int l = (int)strlen(rows[i].topic);
        if (l > w)
            w = l;
    }
    fprintf(out, "%-*s %9s %12s %12s %10s\n", w, "TOPIC", "PARTITION", "COMMITTED", "END", "LAG");
    int64_t total = 0;
    size_t unknown = 0;
    for (size_t i = 0; i < n; i++) {
        const struct admin_status_row *r = &rows[i];
        char committed[24], end[24], lag[24];
        if (r->committed >= 0)
            snprintf(committed, sizeof(committed), "%" PRId64, r->committed);
        else
            snprintf(committed, sizeof(committed), "-");
        if (r->end >= 0)
            snprintf(end, sizeof(end), "%" PRId64, r->end);
        else
            snprintf(end, sizeof(end), "?");
        int64_t l = admin_status_lag(r);
        if (l >= 0) {
            total += l;
            snprintf(lag, sizeof(lag), "%" PRId64, l);
        } else {
            unknown++;
            snprintf(lag, sizeof(lag), "?");
        }
        fprintf(out, "%-*s %9" PRId32 " %12s %12s %10s\n", w, r->topic, r->partition, committed,
                end, lag);
    }
    if (unknown)
        fprintf(out, "%-*s %9s %12s %12s %10s\n", w, "TOTAL", "", "", "", "?");
    else
        fprintf(out, "%-*s %9s %12s %12s %10" PRId64 "\n", w, "TOTAL", "", "", "", total);
    return unknown;
}

int admin_status(const struct config *cfg, const char *remote, FILE *out)
{
    struct routes_sub *subs = NULL;
    size_t nsubs = 0;
    char err[1024], group[256];
    int rc = 1;
    rd_kafka_t *rk = NULL;
    rd_kafka_topic_partition_list_t *list = NULL;
    struct admin_status_row *rows = NULL;
    struct kafka_state st = {.component = COMP};
    if (routes_into(cfg, remote, &subs, &nsubs, err, sizeof(err)) ||
        kafka_group_apply(cfg, remote, group, sizeof(group))) {
        log_error(COMP, "event=status_failed error=%s", LOG_Q(err));
        goto out;
    }
    const char *forced[] = {"group.id", group, "enable.auto.commit", "false", NULL};
    rd_kafka_conf_t *conf = kafka_conf_new(cfg, &st, NULL, forced, err, sizeof(err));
    if (!conf) {
        log_error(COMP, "event=status_failed error=%s", LOG_Q(err));
        goto out;
    }
    if (!(rk = kafka_client_new(RD_KAFKA_CONSUMER, conf, "kafka", err, sizeof(err)))) {
        log_error(COMP, "event=status_failed error=%s", LOG_Q(err));
        goto out;
    }
    list = rd_kafka_topic_partition_list_new(16);
    for (size_t i = 0; i < nsubs; i++) {
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, subs[i].topic, NULL);
        rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, rkt, &md, ADMIN_TIMEOUT_MS);
        rd_kafka_topic_destroy(rkt);
        if (e) {
            log_error(COMP, "event=status_failed topic=%s error=%s", LOG_Q(subs[i].topic),
                      rd_kafka_err2name(e));
            goto out;
        }
        rd_kafka_resp_err_t terr =
            md->topic_cnt == 1 ? md->topics[0].err : RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC;
        if (!terr) {
            for (int p = 0; p < md->topics[0].partition_cnt; p++)
                rd_kafka_topic_partition_list_add(list, subs[i].topic,
                                                  md->topics[0].partitions[p].id);
        } else if (terr == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
                   terr == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC) {
            log_warn(COMP, "event=topic_missing topic=%s",
                     LOG_Q(subs[i].topic)); /* nothing to lag */
        } else {
            /* its partitions are unknown, so is its lag: not a 0 in the total */
            log_error(COMP, "event=status_failed topic=%s error=%s", LOG_Q(subs[i].topic),
                      rd_kafka_err2name(terr));
            rd_kafka_metadata_destroy(md);
            goto out;
        }
        rd_kafka_metadata_destroy(md);
    }
    rd_kafka_topic_partition_list_sort(list, NULL, NULL);
    if (list->cnt > 0) {
        rd_kafka_resp_err_t e = rd_kafka_committed(rk, list, ADMIN_TIMEOUT_MS);
        if (e) {
            log_error(COMP, "event=status_failed what=committed error=%s", rd_kafka_err2name(e));
            goto out;
        }
    }
    rows = calloc((size_t)list->cnt + 1, sizeof(*rows));
    if (!rows)
        goto out;
    for (int i = 0; i < list->cnt; i++) {
        const rd_kafka_topic_partition_t *tp = &list->elems[i];
        struct admin_status_row *r = &rows[i];
        r->topic = tp->topic;
        r->partition = tp->partition;
        r->committed = !tp->err && tp->offset >= 0 ? tp->offset : -1;
        r->low = r->end = -1;
        rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(
            rk, tp->topic, tp->partition, &r->low, &r->end, ADMIN_TIMEOUT_MS);
        if (e) {
            log_error(COMP, "event=status_failed topic=%s partition=%" PRId32 " error=%s",
                      LOG_Q(tp->topic), tp->partition, rd_kafka_err2name(e));
            goto out;
        }
    }
    size_t unknown = admin_status_print(out, rows, (size_t)list->cnt);
    if (unknown) {
        log_error(COMP, "event=status_incomplete partitions_without_end_offset=%zu", unknown);
        goto out;
    }
    rc = 0;
out:
    free(rows);
    if (list)
        rd_kafka_topic_partition_list_destroy(list);
    if (rk)
        rd_kafka_destroy(rk);
    free(subs);
    return rc;
}
