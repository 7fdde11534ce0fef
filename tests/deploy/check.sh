#!/usr/bin/env bash
# The deployment files, checked as far as this machine allows (no Docker engine, no cluster):
# YAML parses; the compose and Kubernetes configurations load with dxsync's own loader; every
# source has a producer and every remote a consumer; probes and scrape annotations are there;
# systemd units verify; the Dockerfile builds with deploy/build.sh, which is run here too.
. "$(dirname "$0")/../lib/dx.sh"
t_begin --no-services
T_NAME=deploy
SRC=${DXSYNC_SOURCE:?} BIN=${DXSYNC_BIN:?}
D=$SRC/deploy
T=$T_TMP
PY=python3; $PY -c 'import yaml' 2>/dev/null || PY=/usr/bin/python3
export DXSYNC_TOKEN_A=x DXSYNC_TOKEN_B=x DXSYNC_TOKEN_C=x POSTGRES_PASSWORD=x PGPASSWORD=x

# compose
if "$BIN/tests/config_dump" "$D/compose/dxsync.json" >"$T/compose-cfg.json" 2>"$T/err"; then
  pass "compose: dxsync.json loads"
else fail "compose: dxsync.json: $(cat "$T/err")"; fi
if $PY - "$D/compose/docker-compose.yml" "$T/compose-cfg.json" <<'PY'
import json, sys, yaml
dc = yaml.safe_load(open(sys.argv[1])); cfg = json.load(open(sys.argv[2]))
svcs = dc["services"]; bad = []
sources = {r["from"] for r in cfg["routes"]}; remotes = {r["to"] for r in cfg["routes"]}
for s in sources:
    cmd = svcs.get(f"producer-{s}", {}).get("command", [])
    if cmd[:3] != ["dxsync-producer", "--instance", s]: bad.append(f"producer-{s}: {cmd}")
for r in remotes:
    cmd = svcs.get(f"consumer-{r}", {}).get("command", [])
    if cmd[:3] != ["dxsync-consumer", "--remote", r]: bad.append(f"consumer-{r}: {cmd}")
    if not any(str(v).endswith(":/var/lib/dxsync") and str(v).split(":")[0] in (dc.get("volumes") or {})
               for v in svcs.get(f"consumer-{r}", {}).get("volumes", [])):
        bad.append(f"consumer-{r}: no named volume for its clock store at /var/lib/dxsync")
if svcs.get("notifier", {}).get("command", [None])[0] != "dxsync-notifier": bad.append("notifier")
for i in cfg["instances"]:
    host = i["url"].split("//")[1].split(":")[0]
    if host not in svcs: bad.append(f"instance {i['name']}: no service {host}")
    if "healthcheck" not in svcs.get(host, {}): bad.append(f"{host}: no healthcheck")
for name in ("postgres", "kafka"):
    if "healthcheck" not in svcs[name]: bad.append(f"{name}: no healthcheck")
if "wal_level=logical" not in svcs["postgres"]["command"]: bad.append("postgres without wal_level=logical")
for s, v in svcs.items():
    if s.startswith(("producer-", "consumer-", "notifier")) and "0.0.0.0:9464" not in v["command"]:
        bad.append(f"{s}: no --metrics-addr for the image's healthcheck")
print("\n".join(bad)); sys.exit(1 if bad else 0)
PY
then pass "compose: YAML parses; a producer per source, a consumer per remote with a volume for its store, health checks"
else fail "compose services do not match dxsync.json"; fi

# Kubernetes
if $PY - "$D/k8s/dxsync.yaml" "$T/k8s.json" <<'PY'
import json, sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
cm = next(d for d in docs if d["kind"] == "ConfigMap")
open(sys.argv[2], "w").write(cm["data"]["dxsync.json"])
json.dump([{"kind": d["kind"], "name": d["metadata"]["name"], "spec": d.get("spec")} for d in docs],
          open(sys.argv[2] + ".docs", "w"))
PY
then pass "k8s: YAML parses"; else fail "k8s: YAML does not parse"; fi
if "$BIN/tests/config_dump" "$T/k8s.json" >"$T/k8s-cfg.json" 2>"$T/err"; then
  pass "k8s: the ConfigMap's dxsync.json loads"
else fail "k8s: ConfigMap dxsync.json: $(cat "$T/err")"; fi
if $PY - "$T/k8s.json.docs" "$T/k8s-cfg.json" <<'PY'
import json, sys
docs = json.load(open(sys.argv[1])); cfg = json.load(open(sys.argv[2])); bad = []
deps = {d["name"]: d["spec"] for d in docs if d["kind"] in ("Deployment", "StatefulSet")}
sets = {d["name"] for d in docs if d["kind"] == "StatefulSet"}
services = {d["name"]: d["spec"] for d in docs if d["kind"] == "Service"}
kinds = {d["kind"] for d in docs}
for k in ("ConfigMap", "Secret"):
    if k not in kinds: bad.append(f"no {k}")
for s in {r["from"] for r in cfg["routes"]}:
    spec = deps.get(f"dxsync-producer-{s}")
    if not spec: bad.append(f"no producer for {s}"); continue
    if spec["replicas"] != 2: bad.append(f"producer-{s}: two replicas (one active, one standby)")
    if spec["template"]["spec"]["containers"][0]["args"][:3] != ["dxsync-producer", "--instance", s]: bad.append(f"producer-{s} args")
for r in {r["to"] for r in cfg["routes"]}:
    spec = deps.get(f"dxsync-consumer-{r}")
    if not spec: bad.append(f"no consumer for {r}"); continue
    c = spec["template"]["spec"]["containers"][0]
    if c["args"][:3] != ["dxsync-consumer", "--remote", r]: bad.append(f"consumer-{r} args")
    # a StatefulSet: a volume for its clock store, its pod name as its member name
    name = f"dxsync-consumer-{r}"
    if name not in sets: bad.append(f"consumer-{r} is not a StatefulSet")
    claims = [t["metadata"]["name"] for t in spec.get("volumeClaimTemplates", [])]
    if not any(m["mountPath"] == "/var/lib/dxsync" and m["name"] in claims for m in c.get("volumeMounts", [])):
        bad.append(f"consumer-{r}: no volume claim mounted at /var/lib/dxsync")
    # --member's default, the host name, is the pod's name (no $(VAR): podman does not expand it)
    if "--member" in c["args"] or any("$(" in a for a in c["args"]):
        bad.append(f"consumer-{r}: --member given, or an argument with $(VAR)")
    if services.get(spec.get("serviceName"), {}).get("clusterIP") != "None":
        bad.append(f"consumer-{r}: no headless service {spec.get('serviceName')}")
    if spec["template"]["spec"].get("securityContext", {}).get("fsGroup") != 65534:
        bad.append(f"consumer-{r}: the volume is not writable by the image's user (fsGroup)")
if "dxsync-notifier" not in deps: bad.append("no notifier")
for name, spec in deps.items():
    t = spec["template"]; c = t["spec"]["containers"][0]
    if t["metadata"].get("annotations", {}).get("prometheus.io/scrape") != "true": bad.append(f"{name}: no scrape annotation")
    for p in ("livenessProbe", "readinessProbe"):
        if c.get(p, {}).get("httpGet", {}).get("path") != "/healthz": bad.append(f"{name}: {p} not on /healthz")
        if c.get(p, {}).get("httpGet", {}).get("port") != 9464: bad.append(f"{name}: {p} not on port 9464 by number")
    if "0.0.0.0:9464" not in c["args"]: bad.append(f"{name}: no --metrics-addr")
    if {"secretRef": {"name": "dxsync-secrets"}} not in c.get("envFrom", []): bad.append(f"{name}: tokens not from the Secret")
print("\n".join(bad)); sys.exit(1 if bad else 0)
PY
then pass "k8s: producers (an active and a standby each), consumers (StatefulSets with a store volume), notifier, probes on /healthz, scrape annotations"
else fail "k8s manifests do not match their configuration"; fi

# systemd
mkdir -p "$T/units"
for u in "$D"/systemd/*.service; do
  sed -e "s|/usr/local/bin/dxsync-producer|$BIN/producer/dxsync-producer|" \
      -e "s|/usr/local/bin/dxsync-consumer|$BIN/consumer/dxsync-consumer|" \
      -e "s|/usr/local/bin/dxsync-notifier|$BIN/consumer/dxsync-notifier|" "$u" >"$T/units/$(basename "$u")"
done
if command -v systemd-analyze >/dev/null; then
  if systemd-analyze verify "$T/units/dxsync-producer@a.service" "$T/units/dxsync-consumer@b.service" \
       "$T/units/dxsync-notifier.service" >"$T/sd.log" 2>&1 && ! grep -q "Unknown\|Invalid\|Failed" "$T/sd.log"; then
    pass "systemd: the three units verify"
  else fail "systemd: $(cat "$T/sd.log")"; fi
else
  pass "systemd: systemd-analyze not installed; units not verified"
fi
if grep -q '^StateDirectory=dxsync$' "$D/systemd/dxsync-consumer@.service"; then
  pass "systemd: the consumer's clock store in its StateDirectory"
else fail "systemd: dxsync-consumer@.service has no StateDirectory"; fi

# Dockerfile: built with deploy/build.sh, whose packages tests/run.sh installs; run it here.
if grep -q '^RUN deploy/build.sh /opt/dxsync$' "$D/docker/Dockerfile"; then pass "Dockerfile builds with deploy/build.sh"
else fail "Dockerfile does not build with deploy/build.sh"; fi
missing=""
for p in $(sed -n '/^FROM debian:12 AS build/,/^WORKDIR/p' "$D/docker/Dockerfile" | grep -oE 'lib[a-z0-9.-]+-dev'); do
  grep -q -- "$p" "$SRC/tests/run.sh" || missing="$missing $p"
done
[ -z "$missing" ] && pass "the Dockerfile's build packages are the ones CI installs" || fail "not installed by CI:$missing"
if DXSYNC_RELEASE_BUILD="$T/build" "$D/build.sh" "$T/prefix" >"$T/build.log" 2>&1 &&
   [ -x "$T/prefix/bin/dxsync-producer" ] && [ -x "$T/prefix/bin/dxsync-consumer" ] && [ -x "$T/prefix/bin/dxsync-notifier" ]; then
  pass "deploy/build.sh builds and installs the three binaries"
else fail "deploy/build.sh: $(tail -20 "$T/build.log")"; fi

finish
