#!/usr/bin/env bash
# README's first command: deploy/local/up.sh brings the demo up; an article created in a (as
# its admin, logged in like the app does) is on b within a second, an edit on b comes back to
# a; SIGTERM (what Ctrl-C does in a terminal) stops everything it started.
. "$(dirname "$0")/../lib/dx.sh"
t_begin --no-services
SRC=${DXSYNC_SOURCE:?}
export DXSYNC_DEMO_RUN=$(mktemp -d /tmp/dxsync-demo-test.XXXXXX)
export DXSYNC_DEMO_PORT_A=28155 DXSYNC_DEMO_PORT_B=28156 DXSYNC_DEMO_PG_PORT=25450 \
       DXSYNC_DEMO_KAFKA_PORT=29292 DXSYNC_DEMO_KAFKA_CONTROLLER_PORT=29293
chmod 755 "$DXSYNC_DEMO_RUN"
T_STOP_GRACE=120 # up.sh stops Directus, Kafka and PostgreSQL on SIGTERM
start_proc up setsid "$SRC/deploy/local/up.sh"
up=$(proc_pid up)
at_exit 'rm -rf "$DXSYNC_DEMO_RUN"'
up_or_gone() { grep -q "dxsync demo is running" "$T_TMP/up.log" || ! running "$up"; }
wait_for 300 up_or_gone || true
if grep -q "dxsync demo is running" "$T_TMP/up.log"; then pass "up.sh brings the demo up"; else fail "up.sh: $(tail -20 "$T_TMP/up.log")"; fi
grep -q "http://127.0.0.1:28155    login admin@example.com" "$T_TMP/up.log" && pass "it prints the URLs and logins" || fail "no URL and login printed"
grep -q "config       $DXSYNC_DEMO_RUN/dxsync.json" "$T_TMP/up.log" && pass "it prints the config path" || fail "no config path"
# a clean run reads as one: no tool's error line on the terminal
errors=$(grep -Ei '^curl: \(|\berror\b|\bfatal\b|traceback' "$T_TMP/up.log" || true)
[ -z "$errors" ] && pass "a clean start prints no error line" || fail "error lines on a clean start: $errors"
python3 - <<'PY' && pass "a -> b and b -> a within a second each" || fail "the demo does not sync"
import json, time, urllib.request
def call(port, method, path, body=None, token=None):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **({"Authorization": "Bearer " + token} if token else {})})
    with urllib.request.urlopen(req, timeout=30) as r:
        t = r.read()
        return json.loads(t) if t else None
login = {"email": "admin@example.com", "password": "dxsync-admin-password"}
ta = call(28155, "POST", "/auth/login", login)["data"]["access_token"]
tb = call(28156, "POST", "/auth/login", login)["data"]["access_token"]
item = call(28155, "POST", "/items/articles", {"title": "hello from a", "rating": 1}, ta)["data"]
def seen(port, token, want, limit=1.0):
    t0 = time.time()
    while time.time() - t0 < limit:
        got = call(port, "GET", f"/items/articles?filter[id][_eq]={item['id']}", token=token)["data"]
        if got and got[0]["title"] == want:
            print(f"     {want!r} after {(time.time() - t0) * 1000:.0f} ms"); return True
        time.sleep(0.02)
    return False
ok = seen(28156, tb, "hello from a")
call(28156, "PATCH", f"/items/articles/{item['id']}", {"title": "edited on b"}, tb)
ok = seen(28155, ta, "edited on b") and ok
raise SystemExit(0 if ok else 1)
PY
stop_proc up TERM 120
grep -q "stopped; state kept" "$T_TMP/up.log" && pass "SIGTERM stops the demo" || fail "no clean stop: $(tail -5 "$T_TMP/up.log")"
n=$(grep -l "event=stopped" "$DXSYNC_DEMO_RUN"/producer-*.log "$DXSYNC_DEMO_RUN"/consumer-*.log "$DXSYNC_DEMO_RUN"/notifier.log 2>/dev/null | wc -l)
[ "$n" = 5 ] && pass "the five dxsync processes stopped cleanly" || fail "only $n of 5 dxsync processes logged a clean stop"
if (exec 3<>/dev/tcp/127.0.0.1/28155) 2>/dev/null || (exec 3<>/dev/tcp/127.0.0.1/29292) 2>/dev/null; then fail "a service is still listening"; else pass "Directus and Kafka are stopped"; fi
finish
