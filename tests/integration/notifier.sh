#!/usr/bin/env bash
# Notifier against real Kafka and Directus a: error events produced into <prefix>.errors become
# notifications in the source instance for exactly the route's recipients (read back as each
# of them sees them: login + GET /notifications), an editor not listed gets none, a recipient
# Directus refuses is logged and counted without blocking the others; 500 errors of one route
# and code in a window become one digest per recipient; remote_unavailable/remote_recovered one
# each; malformed events, unknown routes and routes without notify are skipped with a log line
# and later events still notify; a key longer than 255 characters still yields a notification;
# Directus a stopped while errors arrive: the notifications appear once after it returns;
# SIGTERM flushes an open digest and commits, and a restart sends nothing twice; kill -9 with
# a digest open loses nothing (its offset was not stored).
. "$(dirname "$0")/../lib/dx.sh"
t_begin
N=$DXSYNC_BIN/consumer/dxsync-notifier
HARNESS=${DXSYNC_SOURCE:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/harness
PREFIX=itn$(date +%s%N | tail -c 9)
ERRORS=$PREFIX.errors
ADMIN=$DXSYNC_A_ADMIN_TOKEN
GHOST=0badc0de-0000-4000-8000-00000000beef # a uuid that is no user of instance a
WINDOW=4
MPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
A_PORT=${DXSYNC_A_URL##*:}

# Directus a is stopped in the middle: whatever happens, it is running again at the end.
A_STOPPED=0
restart_a() { "$HARNESS/directus.sh" start a "$A_PORT" "$DXSYNC_PG_URL/directus_a" >/dev/null; }
at_exit '[ "$A_STOPPED" = 0 ] || restart_a'

write_cfg() { # FILE WINDOW_S
  cat >"$1" <<JSON
{ "kafka": {"brokers": "$DXSYNC_KAFKA_BROKERS", "topic_prefix": "$PREFIX", "partitions": 3,
             "properties": {"session.timeout.ms": "6000"}},
  "instances": [
    {"name": "a", "url": "$DXSYNC_A_URL", "token": "\${ITN_TOKEN_A}", "database": "$DXSYNC_A_DB_URL"},
    {"name": "b", "url": "$DXSYNC_B_URL", "token": "\${ITN_TOKEN_B}", "database": "$DXSYNC_B_DB_URL"}],
  "routes": [
    {"from": "a", "to": "b", "collections": [{"collection": "articles", "fields": ["title"]}],
     "notify": ["$DXSYNC_A_EDITOR1_ID", "$GHOST", "$DXSYNC_A_ADMIN_USER_ID"]},
    {"from": "b", "to": "a", "collections": [{"collection": "articles", "fields": ["title"]}]}],
  "notify": {"digest_window_s": $2} }
JSON
}
export ITN_TOKEN_A=$DXSYNC_A_SYNC_TOKEN ITN_TOKEN_B=$DXSYNC_B_SYNC_TOKEN
write_cfg "$T_TMP/cfg.json" "$WINDOW"

# gen KIND SOURCE REMOTE KEY CODE [COUNT] [STATUS]: error events, one JSON line each (KEY gets
# -NNN appended when COUNT is given). The Directus message carries the key, so tests can find
# every notification by it.
cat >"$T_TMP/gen.py" <<'PY'
import json, sys
kind, src, rem, key, code = sys.argv[1:6]
count = int(sys.argv[6]) if len(sys.argv) > 6 else 0
status = int(sys.argv[7]) if len(sys.argv) > 7 else 400
for i in range(max(count, 1)):
    k = f"{key}-{i:03d}" if count else key
    e = {"version": 1, "kind": kind, "source": src, "remote": rem,
         "timestamp": "2026-11-25T22:31:00.000Z", "status": status, "code": code,
         "message": f"{k}: value too long for *title*", "attempts": 3}
    if kind == "apply_failed":
        e.update({"collection": "articles", "key": k, "action": "update", "event_id": f"{src}:{i}",
                  "topic": f"dxsync.{src}.articles", "partition": 2, "offset": 41 + i})
    print(json.dumps(e, ensure_ascii=False))
PY
gen() { python3 "$T_TMP/gen.py" "$@"; }
produce() { kcat -b "$DXSYNC_KAFKA_BROKERS" -P -t "$ERRORS"; }
produce_to() { kcat -b "$DXSYNC_KAFKA_BROKERS" -P -t "$ERRORS" -p "$1"; }
# mark TAG CODE: one error event (code CODE, key TAG-<partition>) on each of the 3 partitions of
# the errors topic: the notifier reads it after everything produced there before it. "Nothing
# more arrived" is checked once the markers' notifications are there (marks_seen TAG), never
# after a fixed sleep.
mark() { local p; for p in 0 1 2; do gen apply_failed a b "$1-$p" "$2" | produce_to "$p"; done; }
marks_seen() { local p; for p in 0 1 2; do [ "$(count "$ED1" "$1-$p")" -ge 1 ] || return 1; done; }
# reads: the error events the running notifier read (lines of its log); read_everywhere: it
# read one on each of the 3 partitions.
reads() { grep -c 'event=error_event ' "$T_TMP/notifier.log" || true; }
read_everywhere() { [ "$(grep -o 'event=error_event partition=[0-9]*' "$T_TMP/notifier.log" | sort -u | wc -l)" -eq 3 ]; }

login() {
  curl -sS -X POST -H 'Content-Type: application/json' --data "{\"email\":\"$1\",\"password\":\"$2\"}" \
    "$DXSYNC_A_URL/auth/login" | json 'j["data"]["access_token"]'
}
# notes TOKEN TEXT [RECIPIENT]: the notifications TOKEN's user sees whose message contains TEXT.
notes() {
  local args=(-sS -G -H "Authorization: Bearer $1" --max-time 30
    --data-urlencode "filter[message][_contains]=$2" --data-urlencode "limit=-1"
    --data-urlencode "fields=id,recipient,subject,message,collection,item")
  [ -n "${3:-}" ] && args+=(--data-urlencode "filter[recipient][_eq]=$3")
  curl "${args[@]}" "$DXSYNC_A_URL/notifications"
}
count() { notes "$@" | json 'len(j["data"])'; }
# seen N TEXT: editor1 and the admin (as recipient) each see exactly N notifications about TEXT.
seen() {
  [ "$(count "$ED1" "$2")" = "$1" ] && [ "$(count "$ADMIN" "$2" "$DXSYNC_A_ADMIN_USER_ID")" = "$1" ]
}
# verdict DESCRIPTION PYTHON: runs PYTHON on the JSON of stdin (the first notification is n);
# it prints what it saw and exits 0 when the check holds.
verdict() {
  local d=$1 code=$2
  if python3 -c "import json, sys
n = json.load(sys.stdin)['data'][0]
$code" >"$T_TMP/verdict" 2>&1; then pass "$d"; else fail "$d"; sed 's/^/     /' "$T_TMP/verdict"; fi
}
metric() { curl -s "http://127.0.0.1:$MPORT/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
log_has() { grep -q -- "$1" "$T_TMP/notifier.log"; }

start_proc notifier "$N" --config "$T_TMP/cfg.json" --metrics-addr "127.0.0.1:$MPORT" --log-level debug
check "notifier joins the group" wait_for 60 log_has event=partitions_assigned
check "the errors topic was created" wait_for 10 bash -c "kcat -b $DXSYNC_KAFKA_BROKERS -L -t $ERRORS | grep -q 'partition 2'"
ED1=$(login "$DXSYNC_A_EDITOR1_EMAIL" "$DXSYNC_A_EDITOR1_PASSWORD")
ED2=$(login "$DXSYNC_A_EDITOR2_EMAIL" "$DXSYNC_A_EDITOR2_PASSWORD")

# ---- one error: exactly the listed recipients, as they see it
K1="$PREFIX-one"
gen apply_failed a b "$K1" VALUE_TOO_LONG | produce
check "editor1 and admin each get one notification" wait_for $((WINDOW + 20)) seen 1 "$K1"
check "an editor not listed gets none" test "$(count "$ED2" "$K1")" = 0
check "no other rows: editor1 + admin (the unknown user is refused)" test "$(count "$ADMIN" "$K1")" = 2
notes "$ED1" "$K1" | verdict "subject names the remote and the failure; message has every detail" '
m, s = n["message"], n["subject"]
want = ["**Collection:** articles", "**Key:** '"$K1"'", "**Action:** update", "**Status:** 400",
        "VALUE\\_TOO\\_LONG", "value too long for \\*title\\*", "**Attempts:** 3",
        "topic dxsync.a.articles, partition 2, offset 41", "kcat -C -t dxsync.a.articles -p 2 -o 41 -c 1",
        "'"$PREFIX"'.dlq.b", "'"$ERRORS"'"]
missing = [w for w in want if w not in m]
ok = not missing and "b" in s and "VALUE_TOO_LONG" in s and "'"$K1"'" in s and n["collection"] == "articles" and n["item"] == "'"$K1"'"
print("subject:", s); print("missing:", missing)
sys.exit(0 if ok else 1)'
check "the refused recipient is logged" wait_for 5 log_has "event=notification_refused instance=a recipient=$GHOST"
check "and counted as failed" test "$(metric 'dxsync_notifier_notifications_failed_total{source="a"}')" -ge 1

# ---- 500 errors of one route and code in a window: one digest per recipient; another code: its own
{ gen apply_failed a b "$PREFIX-dig" VALUE_OUT_OF_RANGE 500; gen apply_failed a b "$PREFIX-oth" INVALID_PAYLOAD 3; } | produce
check "the digest arrives" wait_for $((WINDOW + 30)) seen 1 "$PREFIX-dig"
check "the other code has its own digest" wait_for 10 seen 1 "$PREFIX-oth"
mark "$PREFIX-mk1" MARK1
check "markers after the digest are notified" wait_for $((WINDOW + 30)) marks_seen "$PREFIX-mk1"
check "still one digest per recipient, not 500" seen 1 "$PREFIX-dig"
check "none for editor2" test "$(count "$ED2" "$PREFIX-dig")" = 0
notes "$ED1" "$PREFIX-dig" | verdict "the digest counts them and lists the first keys" '
m = n["message"]
ok = "**500** changes" in m and "500 changes" in n["subject"] and "'"$PREFIX"'-dig-000" in m and "and 490 more" in m and "'"$PREFIX"'-dig-010" not in m and n["item"] is None
print(n["subject"]); sys.exit(0 if ok else 1)'
check "digested metric counts the folded events" test "$(metric dxsync_notifier_events_digested_total)" -ge 503

# ---- remote_unavailable and remote_recovered: one each
gen remote_unavailable a b "$PREFIX-ru" "" 0 0 | produce
gen remote_recovered a b "-" "" 0 200 | produce
check "remote_unavailable: one notification" wait_for 20 seen 1 "$PREFIX-ru"
rec() { notes "$ED1" "$ERRORS" | json 'sum(1 for n in j["data"] if n["subject"] == "Sync to b recovered")'; }
check "remote_recovered: one notification" wait_for 20 test "$(rec)" = 1

# ---- skipped: malformed, unknown route, route without notify; later events still notify
# (every invalid vector of tests/vectors/errors: not JSON, no remote, unknown kind, version 9)
{
  for f in "$DXSYNC_VECTORS"/errors/invalid/*; do tr -d "\n" <"$f"; echo; done
  gen apply_failed a zz "$PREFIX-zz" X
  gen apply_failed b a "$PREFIX-nonotify" X
  gen apply_failed a b "$PREFIX-after" LATER
} | produce
check "a later event still notifies" wait_for $((WINDOW + 20)) seen 1 "$PREFIX-after"
NBAD=$(ls "$DXSYNC_VECTORS"/errors/invalid | wc -l)
check "malformed events ($NBAD invalid vectors) are logged with the reason" test "$(grep -c event=malformed_error_event "$T_TMP/notifier.log")" = "$NBAD"
check "the reason is in the line" log_has 'reason="not valid JSON'
check "an unknown version is named" log_has 'event=malformed_error_event.*version'
check "an unknown route is logged" log_has 'reason="no route from a to zz'
check "a route without notify is logged" log_has 'remote=a kind=apply_failed code=X reason="the route has no notify list"'
check "nothing for the unknown route" test "$(count "$ADMIN" "$PREFIX-zz")" = 0
bnotes=$(curl -sS -G -H "Authorization: Bearer $DXSYNC_B_ADMIN_TOKEN" --data-urlencode "filter[message][_contains]=$PREFIX" "$DXSYNC_B_URL/notifications" | json 'len(j["data"])')
check "nothing for the route without notify" test "$bnotes" = 0

# ---- a key and a code longer than the 255-character columns
LONGKEY="$PREFIX-long-$(python3 -c 'print("é" * 400)')"
LONGCODE=$(python3 -c 'print("C" * 300)')
gen apply_failed a b "$LONGKEY" "$LONGCODE" | produce
check "a key longer than 255 still yields a notification" wait_for $((WINDOW + 20)) seen 1 "$PREFIX-long"
notes "$ED1" "$PREFIX-long" | verdict "subject and item shortened to 255, the message keeps the key" '
k = "'"$LONGKEY"'"
ok = len(n["subject"]) <= 255 and len(n["item"]) <= 255 and n["item"].startswith(k[:200]) and k in n["message"]
print(len(n["subject"]), len(n["item"])); sys.exit(0 if ok else 1)'

# ---- Directus a down while errors arrive: the notifications appear once it returns. Only a
# Directus this harness run started (its pid file is in $DXSYNC_RUN) is stopped.
[ -f "$DXSYNC_RUN/directus-a.pid" ] && kill -0 "$(cat "$DXSYNC_RUN/directus-a.pid")" 2>/dev/null \
  || { fail "Directus a of $DXSYNC_A_URL was not started by the harness in $DXSYNC_RUN: cannot stop it"; finish; exit 1; }
"$HARNESS/directus.sh" stop a
A_STOPPED=1
gen apply_failed a b "$PREFIX-down1" DOWN_A | produce
gen apply_failed a b "$PREFIX-down2" DOWN_B | produce
check "the notifier retries while Directus is away" wait_for $((WINDOW + 20)) log_has "event=directus_unavailable instance=a"
retried() { [ "$(metric 'dxsync_notifier_send_retries_total{source="a"}')" -ge 2 ]; }
check "retries are counted" wait_for 20 retried
restart_a
A_STOPPED=0
both_down() { seen 1 "$PREFIX-down1" && seen 1 "$PREFIX-down2"; }
check "after Directus returns, both notifications arrive" wait_for 90 both_down
check "recovery is logged" log_has "event=directus_available instance=a"
mark "$PREFIX-mk2" MARK2
check "markers after them are notified" wait_for $((WINDOW + 30)) marks_seen "$PREFIX-mk2"
check "exactly once each" seen 2 "$PREFIX-down"

# ---- SIGTERM: a clean stop commits; a restart with a long window resends nothing, and its
# own stop flushes the open digest at once instead of waiting for the window.
stop_proc notifier TERM 60
check "SIGTERM stops cleanly (exit 0)" test "$STOP_RC" = 0
check "stop is logged" log_has "event=stopped"
write_cfg "$T_TMP/cfg60.json" 60
mv "$T_TMP/notifier.log" "$T_TMP/notifier-1.log"
start_proc notifier "$N" --config "$T_TMP/cfg60.json" --metrics-addr "127.0.0.1:$MPORT" --log-level debug
check "the restarted notifier joins" wait_for 60 log_has event=partitions_assigned
# One new event on each partition: once all three are read, anything read again would have
# been read before them.
mark "$PREFIX-flush" FLUSH
check "it reads the new events" wait_for 30 read_everywhere
check "it reads nothing again after the restart (offsets were committed): $(reads) read, 3 new" test "$(reads)" = 3
check "the digest is still open (60 s window)" test "$(count "$ED1" "$PREFIX-flush")" = 0
t0=$SECONDS
stop_proc notifier TERM 60
check "SIGTERM flushes and exits 0" test "$STOP_RC" = 0
check "the open digest went out at stop" seen 1 "$PREFIX-flush"
check "well before its window closed" test $((SECONDS - t0)) -lt 30
mv "$T_TMP/notifier.log" "$T_TMP/notifier-2.log"
start_proc notifier "$N" --config "$T_TMP/cfg.json" --log-level debug
check "a third start joins" wait_for 60 log_has event=partitions_assigned
# ---- kill -9 while a digest is open: its offset was not stored, so the next start sends it.
# One event on each partition: once all three are read, anything read again (the flushed
# digest's events) would have been read before them.
mark "$PREFIX-crash" CRASH
check "the events are read" wait_for 20 read_everywhere
check "the flushed digest was committed: no event was read again ($(reads) read, 3 new)" test "$(reads)" = 3
stop_proc notifier KILL
check "the flushed digest was not sent again" seen 1 "$PREFIX-flush"
check "nothing was sent before the crash" test "$(count "$ED1" "$PREFIX-crash")" = 0
mv "$T_TMP/notifier.log" "$T_TMP/notifier-3.log"
start_proc notifier "$N" --config "$T_TMP/cfg.json" --log-level debug
check "after the crash the notification is sent, not lost" wait_for $((WINDOW + 60)) seen 1 "$PREFIX-crash"
mark "$PREFIX-mk3" MARK3
check "markers after them are notified" wait_for $((WINDOW + 30)) marks_seen "$PREFIX-mk3"
check "once" seen 1 "$PREFIX-crash"
stop_proc notifier
if [ "$T_FAILED" -gt 0 ]; then
  for f in "$T_TMP"/notifier*.log; do echo "---- $(basename "$f") (last 40 lines, librdkafka omitted)"; grep -v librdkafka "$f" | tail -n 40; done
fi
check "no token in the logs" bash -c "! cat '$T_TMP'/notifier*.log | grep -qF -e '$DXSYNC_A_SYNC_TOKEN' -e '$DXSYNC_B_SYNC_TOKEN'"
finish
