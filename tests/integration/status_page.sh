#!/usr/bin/env bash
# Status pages in a real browser: producer (a), consumer (b) and notifier run against the real
# services with --metrics-addr; an article written in Directus a flows to b, and an event whose
# source and key are "<script>alert(1)</script>" is dead-lettered (its apply_failed event becomes
# a notification). Headless Chromium loads each program's / and the test reads the rendered
# DOM: the consumer's remote state, lag per partition and dead-letter row (the hostile string is
# text, no script of it runs), the producer's slot, confirmed LSN and replication lag, the
# notifier's counts. Screenshots go to $DXSYNC_RUN/status-page-*.png (CI artifacts;
# DXSYNC_UPDATE_DOCS=1 also copies the consumer's to docs/status-page.png). The dashboard is
# checked against the live /metrics of the three (tests/deploy/dashboard.py).
. "$(dirname "$0")/../lib/dx.sh"
t_begin
SRC=${DXSYNC_SOURCE:-$(cd "$(dirname "$0")/../.." && pwd)}
BROWSER=$(command -v chromium || command -v chromium-browser || true)
[ -n "$BROWSER" ] || { echo "chromium is needed (apt-get install chromium)" >&2; exit 1; }
PREFIX=its$(date +%s%N | tail -c 9)
HOSTILE='<script>alert(1)</script>'
DB=$DXSYNC_A_DB_URL
ADMIN=$DXSYNC_A_ADMIN_TOKEN
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PP=$(port); CP=$(port); NP=$(port)

cat >"$T_TMP/cfg.json" <<JSON
{ "kafka": {"brokers": "$DXSYNC_KAFKA_BROKERS", "topic_prefix": "$PREFIX", "partitions": 3},
  "instances": [
    {"name": "a", "url": "$DXSYNC_A_URL", "token": "\${ITS_TOKEN_A}", "database": "$DB"},
    {"name": "b", "url": "$DXSYNC_B_URL", "token": "\${ITS_TOKEN_B}"}],
  "routes": [{"from": "a", "to": "b", "notify": ["$DXSYNC_A_EDITOR1_ID"], "collections": [
      {"collection": "articles", "fields": ["title", "rating"]},
      {"collection": "counters", "fields": ["name", "value"]}]}],
  "notify": {"digest_window_s": 1} }
JSON
export ITS_TOKEN_A=$DXSYNC_A_SYNC_TOKEN ITS_TOKEN_B=$DXSYNC_B_SYNC_TOKEN

# A fresh slot: what earlier tests left in the WAL does not matter here.
psql_q "$DB" "select pg_drop_replication_slot('dxsync_a') from pg_replication_slots where slot_name='dxsync_a' and not active" >/dev/null
start_proc producer "$DXSYNC_BIN/producer/dxsync-producer" --config "$T_TMP/cfg.json" --instance a --metrics-addr "127.0.0.1:$PP"
start_proc consumer "$DXSYNC_BIN/consumer/dxsync-consumer" --config "$T_TMP/cfg.json" --remote b --metrics-addr "127.0.0.1:$CP"
start_proc notifier "$DXSYNC_BIN/consumer/dxsync-notifier" --config "$T_TMP/cfg.json" --metrics-addr "127.0.0.1:$NP"
check "the producer streams" wait_for 60 grep -q event=streaming "$T_TMP/producer.log"
check "the consumer is assigned its partitions" wait_for 60 grep -q "partition_assigned topic=$PREFIX.a.articles" "$T_TMP/consumer.log"

# status PORT EXPR: a Python expression over /status.json (bound to j) is true.
status() {
  curl -fsS --max-time 5 "http://127.0.0.1:$1/status.json" >"$T_TMP/s.json" 2>/dev/null &&
    python3 - "$T_TMP/s.json" "$2" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
def total(name):
    return sum(s.get("value", 0) for s in j["metrics"] if s["name"] == name)
sys.exit(0 if eval(sys.argv[2]) else 1)
PY
}

title="status page $PREFIX"
api a "$ADMIN" POST /items/articles "{\"title\":\"$title\",\"rating\":3}" >/dev/null
check "the article is applied on b" wait_for 60 status "$CP" 'total("dxsync_consumer_events_applied_total") >= 1'
check "the producer published it" status "$PP" 'total("dxsync_producer_events_published_total") >= 1'

python3 - "$HOSTILE" >"$T_TMP/hostile.json" <<'PY'
import json, sys
print(json.dumps({"version": 1, "event_id": "a:1", "source": sys.argv[1], "collection": "articles",
                  "action": "create", "key": sys.argv[1], "data": {"id": sys.argv[1], "title": "x"},
                  "delta": {"title": "x"}, "user": None, "timestamp": "2026-11-25T22:30:39.839Z",
                  "activity_id": 1, "revision_id": 1, "lsn": "0/1"}))
PY
kcat -b "$DXSYNC_KAFKA_BROKERS" -P -t "$PREFIX.a.articles" -k "$HOSTILE" "$T_TMP/hostile.json"
check "the hostile event is dead-lettered" wait_for 60 status "$CP" 'len(j["dead_letters"]) >= 1'
check "its notification is sent" wait_for 60 status "$NP" 'total("dxsync_notifier_notifications_sent_total") >= 1'
sleep 3 # a few samples for the rates

# shot NAME PORT: the rendered DOM in $T_TMP/NAME.html and a screenshot in $DXSYNC_RUN.
: "${DXSYNC_RUN:=/tmp/dxsync-run}"
mkdir -p "$DXSYNC_RUN"
shot() {
  local name=$1 p=$2 profile
  profile=$(mktemp -d "$T_TMP/chromium.XXXXXX")
  local flags=(--headless --no-sandbox --disable-gpu --disable-background-networking
    --disable-component-update --disable-sync --no-first-run --no-default-browser-check
    --disable-extensions --no-proxy-server --hide-scrollbars --user-data-dir="$profile"
    --virtual-time-budget=6000)
  timeout 120 "$BROWSER" "${flags[@]}" --dump-dom "http://127.0.0.1:$p/" >"$T_TMP/$name.html" 2>"$T_TMP/$name.chromium.log"
  timeout 120 "$BROWSER" "${flags[@]}" --window-size=1280,1100 \
    --screenshot="$DXSYNC_RUN/status-page-$name.png" "http://127.0.0.1:$p/" >>"$T_TMP/$name.chromium.log" 2>&1
  [ -s "$T_TMP/$name.html" ] && [ -s "$DXSYNC_RUN/status-page-$name.png" ]
}
for prog in consumer:$CP producer:$PP notifier:$NP; do
  if shot "${prog%%:*}" "${prog#*:}"; then pass "chromium renders the ${prog%%:*}'s page and a screenshot"
  else fail "chromium on the ${prog%%:*}'s page:"; tail -5 "$T_TMP/${prog%%:*}.chromium.log"; fi
done

python3 - "$T_TMP" "$HOSTILE" "$PREFIX" >"$T_TMP/verdict" <<'PY'
import html.parser, re, sys
tmp, hostile, prefix = sys.argv[1:]

class Dom(html.parser.HTMLParser):
    """Text by element id, table rows by table id, and every script element."""
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.text, self.rows, self.scripts = [], {}, {}, 0
        self.table, self.row, self.cell = None, None, None
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "script":
            self.scripts += 1
        if tag == "table":
            self.table = a.get("id")
            self.rows.setdefault(self.table, [])
        if tag == "tr" and self.table:
            self.row = []
        if tag in ("td", "th") and self.row is not None:
            self.cell = ""
        self.stack.append(a.get("id"))
    def handle_endtag(self, tag):
        if tag in ("td", "th") and self.cell is not None and self.row is not None:
            self.row.append(self.cell)
            self.cell = None
        if tag == "tr" and self.row is not None:
            self.rows[self.table].append(self.row)
            self.row = None
        if tag == "table":
            self.table = None
        if self.stack:
            self.stack.pop()
    def handle_data(self, d):
        for i in self.stack:
            if i:
                self.text[i] = self.text.get(i, "") + d
        if self.cell is not None:
            self.cell += d

def load(name):
    raw = open(f"{tmp}/{name}.html", encoding="utf-8").read()
    d = Dom()
    d.feed(raw)
    return raw, d

out = []
def ok(cond, what):
    out.append(("ok   " if cond else "FAIL ") + what)

raw, c = load("consumer")
ok(c.text.get("program") == "dxsync-consumer", "consumer: the page names the program")
ok(c.text.get("remote-name") == "b" and c.text.get("remote-state") == "answers",
   "consumer: remote b answers (%r %r)" % (c.text.get("remote-name"), c.text.get("remote-state")))
lag = [r for r in c.rows.get("lag", []) if r and r[0].startswith(prefix + ".")]
ok(len(lag) == 6 and all(re.fullmatch(r"\d[\d,]*", r[2]) for r in lag),
   "consumer: lag per topic and partition, 6 rows (%s)" % lag)
dl = [r for r in c.rows.get("dead-letters", [])[1:] if len(r) >= 6]
ok(any(r[2] == hostile for r in dl), "consumer: the dead letter's key is shown as text")
ok(any(hostile in r[5] for r in dl), "consumer: its message is shown as text (%s)" % [r[5] for r in dl][:1])
ok(["MALFORMED_EVENT", "1"] in c.rows.get("dead-codes", []), "consumer: dead letters by code")
ok(c.scripts == 1 and "<script>alert(1)" not in raw and "&lt;script&gt;alert(1)&lt;/script&gt;" in raw,
   "consumer: the hostile string is escaped text, the page has only its own script (%d)" % c.scripts)
ok("applied-rate" in c.text and c.text["applied-rate"].endswith("/s"), "consumer: applied per second")
ok(hostile in c.text.get("last-error", ""), "consumer: the last error is the dead letter")

raw, p = load("producer")
ok(p.text.get("slot") == "dxsync_a", "producer: slot %r" % p.text.get("slot"))
ok(p.text.get("role") == "active", "producer: its role %r (it holds the slot)" % p.text.get("role"))
ok(re.fullmatch(r"[0-9A-F]+/[0-9A-F]+", p.text.get("confirmed-lsn", "")) and p.text["confirmed-lsn"] != "0/0",
   "producer: confirmed LSN %r" % p.text.get("confirmed-lsn"))
ok(p.text.get("lag-bytes", "").endswith("B") and p.text.get("lag-seconds", "").endswith(" s"),
   "producer: replication lag %r %r" % (p.text.get("lag-bytes"), p.text.get("lag-seconds")))
ok(p.text.get("events-rate", "").endswith("/s"), "producer: events per second %r" % p.text.get("events-rate"))

raw, n = load("notifier")
ok(re.fullmatch(r"[1-9][\d,]*", n.text.get("sent", "")) is not None, "notifier: sent %r" % n.text.get("sent"))
ok(n.text.get("failed") == "0", "notifier: failed %r" % n.text.get("failed"))
print("\n".join(out))
PY
cat "$T_TMP/verdict"
T_COUNT=$((T_COUNT + $(grep -c '' "$T_TMP/verdict")))
T_FAILED=$((T_FAILED + $(grep -c '^FAIL' "$T_TMP/verdict" || true)))

# The dashboard against what the three programs export right now.
for prog in producer:$PP consumer:$CP notifier:$NP; do
  curl -fsS --max-time 5 "http://127.0.0.1:${prog#*:}/metrics" >"$T_TMP/${prog%%:*}.metrics" || true
done
if python3 "$SRC/tests/deploy/dashboard.py" "$SRC/deploy/grafana/dxsync.json" \
  "$T_TMP/producer.metrics" "$T_TMP/consumer.metrics" "$T_TMP/notifier.metrics" >"$T_TMP/dash" 2>&1; then
  pass "the dashboard's queries name live metrics and show every one"
else
  fail "the dashboard against live /metrics:"; sed 's/^/     /' "$T_TMP/dash"
fi

if [ "${DXSYNC_UPDATE_DOCS:-0}" = 1 ] && [ -s "$DXSYNC_RUN/status-page-consumer.png" ]; then
  cp "$DXSYNC_RUN/status-page-consumer.png" "$SRC/docs/status-page.png"
fi
if [ "$T_FAILED" -gt 0 ]; then
  for f in producer consumer notifier; do echo "--- $f.log"; tail -15 "$T_TMP/$f.log"; done
fi
finish
