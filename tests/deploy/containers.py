#!/usr/bin/env python3
"""The container image, run (issue 30): deploy/images.sh builds deploy/docker/Dockerfile with podman
(bases made locally, cached), then the image's three programs run as containers against the
harness's PostgreSQL, Kafka and Directus (host network: the services listen on loopback only):

  - each becomes healthy: the producer by the image's own HEALTHCHECK (on 9464, its
    --metrics-addr); the consumer and the notifier share the host's network, so they listen on
    ports of their own and get the same probe on them (--health-cmd);
  - each runs as the image's non-root user (65534) with a read-only root file system
    (--read-only): the only place a process may write is the consumer's state volume
    (/var/lib/dxsync), where its store appears;
  - an item created on a arrives on b;
  - SIGTERM (podman stop) ends each within its grace period, exit status 0, event=stopped.

Prints the image size and each container's start-to-healthy time.
containers.py; needs root (podman rootful)."""
import atexit, json, os, subprocess, sys, time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from dx import *  # noqa: E402,F401,F403
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from podlib import TAG, build_image, podman  # noqa: E402

NAME = "containers"
A, B = inst("a"), inst("b")
PREFIX = f"ctr{int(time.time() * 1000) % 10**9}"
RUNID = f"{os.getpid()}"



size = build_image(NAME)
print(f"     image {TAG}: {size / 1e6:.0f} MB", flush=True)

cfg = {"kafka": {"brokers": BROKERS, "topic_prefix": PREFIX, "partitions": 3},
       "instances": [{"name": "a", "url": A["url"], "token": "${DXSYNC_TOKEN_A}", "database": "${DXSYNC_DB_A}"},
                     {"name": "b", "url": B["url"], "token": "${DXSYNC_TOKEN_B}", "database": "${DXSYNC_DB_B}"}],
       "routes": [{"from": "a", "to": "b", "collections": [{"collection": "articles", "fields": ["title"]}],
                   "notify": [A["admin_id"]]}]}
CFG = os.path.join(TMP, "dxsync.json")
json.dump(cfg, open(CFG, "w"))
os.chmod(CFG, 0o644)
os.chmod(TMP, 0o755)
secrets = ["-e", f"DXSYNC_TOKEN_A={A['sync']}", "-e", f"DXSYNC_TOKEN_B={B['sync']}",
           "-e", f"DXSYNC_DB_A={A['db']}", "-e", f"DXSYNC_DB_B={B['db']}"]
PROBE = "exec 3<>/dev/tcp/127.0.0.1/{p} && printf 'GET /healthz HTTP/1.0\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"
ports = {"producer": 9464, "consumer": free_port(), "notifier": free_port()}
cmds = {"producer": ["dxsync-producer", "--instance", "a"],
        "consumer": ["dxsync-consumer", "--remote", "b", "--member", "ctr"],
        "notifier": ["dxsync-notifier"]}
names = {k: f"dxsync-{k}-{RUNID}" for k in cmds}
volume = f"dxsync-state-{RUNID}"


def cleanup():
    for n in names.values():
        # -v: the anonymous volume the image's VOLUME gives the producer and the notifier
        podman("rm", "-f", "-v", "-t", "0", n, check_rc=False)
    podman("volume", "rm", "-f", volume, check_rc=False)


atexit.register(cleanup)
fresh_slot(A)
started = {}
for k, argv in cmds.items():
    # exec form, as the image's own: /bin/sh is dash, which has no /dev/tcp
    probe = json.dumps(["bash", "-c", PROBE.format(p=ports[k])])
    extra = [] if k == "producer" else ["--health-cmd", probe, "--health-interval", "15s"]
    if k == "consumer":
        extra += ["-v", f"{volume}:/var/lib/dxsync"]
    started[k] = time.time()
    podman("run", "-d", "--name", names[k], "--network", "host", "--read-only", *secrets, *extra,
           "-v", f"{CFG}:/etc/dxsync/dxsync.json:ro", TAG, *argv, "--metrics-addr", f"127.0.0.1:{ports[k]}")


def healthy(k):
    return podman("healthcheck", "run", names[k], check_rc=False).returncode == 0


for k in cmds:
    ok = wait_for(lambda: healthy(k), 90, 0.25)
    check(ok, f"{k}: healthy {time.time() - started[k]:.1f} s after its start "
              f"({'the image HEALTHCHECK' if k == 'producer' else 'the same probe on its port'})")
for k in cmds:
    user = podman("top", names[k], "user", check_rc=False).stdout.split()
    check(user[1:] == ["nobody"], f"{k}: runs as nobody (65534), not root ({user[1:]})")
check(podman("exec", names["consumer"], "sh", "-c", "touch /x 2>/dev/null", check_rc=False).returncode != 0,
      "the root file system is read-only")
store = podman("exec", names["consumer"], "ls", "/var/lib/dxsync", check_rc=False).stdout.split()
check(f"{PREFIX}.apply.b.ctr" in store, f"the consumer's store is in its volume ({store})")

key = uid()
api(A, "POST", "/items/articles", {"id": key, "title": "from a container"})
check(wait_for(lambda: items(B, "articles", "id,title").get(key, {}).get("title") == "from a container", 60),
      "an item created on a arrives on b through the containers")

for k in ("notifier", "consumer", "producer"):
    t = time.time()
    podman("stop", "-t", "60", names[k], timeout=90)
    took = time.time() - t
    rc = podman("inspect", names[k], "--format", "{{.State.ExitCode}}").stdout.strip()
    logs = podman("logs", names[k], check_rc=False).stderr + podman("logs", names[k], check_rc=False).stdout
    check(rc == "0" and "event=stopped" in logs, f"{k}: SIGTERM stops it cleanly in {took:.1f} s (exit {rc})")
    secret_seen = [s for s in (A["sync"], B["sync"]) if s in logs]
    check(not secret_seen, f"{k}: no token in its log")
finish(NAME)
