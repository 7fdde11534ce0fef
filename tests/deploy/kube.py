#!/usr/bin/env python3
"""deploy/k8s/dxsync.yaml played by `podman kube play` (issue 30) against the harness's PostgreSQL,
Kafka and Directus, with the image deploy/images.sh builds.

podman 4.3 runs Pods, Deployments, PersistentVolumeClaims and ConfigMaps; it ignores Services and
StatefulSets, and it cannot read back a Secret it played itself. So the test plays the manifest's
own documents after rendering what a cluster's controllers would make of them:
  - each Deployment and StatefulSet becomes its pods (`<name>-<ordinal>`), a StatefulSet's pod
    with the claim its volumeClaimTemplate gives it (`state-<name>-<ordinal>`, a podman volume);
    its hostname is its pod name, as a cluster gives it; the containers' arguments, envFrom,
    securityContext, probes, volumes and grace periods are the manifest's;
  - the pods share the host's network (the services listen on loopback only), so each gets a
    port of its own in place of 9464, in its --metrics-addr and its probes (and no containerPort,
    which podman would publish);
  - the ConfigMap's dxsync.json is the manifest's with the harness's brokers, URLs and databases
    (its routes, consumer.state_dir and token references are kept);
  - the Secret is created as podman secret dxsync-secrets with the harness's tokens;
  - Services are left out (nothing here resolves their names).
Then: every pod runs and its probe (the manifest's httpGet, which podman runs with curl) passes;
processes run as 65534; each consumer's member name is its pod name and its store is in its
claim; one producer per instance holds the slot and the other stands by; a -> b and b -> a
sync; each pod stopped with its grace period ends with status 0 and event=stopped, and
`podman kube down` removes them, the claims kept; no token in any log. Prints each pod's start-to-healthy time. Needs root (podman rootful)."""
import atexit, base64, copy, json, os, subprocess, sys, time, urllib.request

import yaml

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from dx import *  # noqa: E402,F401,F403
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from podlib import SRC, TAG, build_image, podman  # noqa: E402

NAME = "kube"
A, B = inst("a"), inst("b")
PREFIX = f"kube{int(time.time() * 1000) % 10**9}"
SECRET = "dxsync-secrets"



build_image(NAME)

docs = [d for d in yaml.safe_load_all(open(os.path.join(SRC, "deploy", "k8s", "dxsync.yaml"))) if d]
kinds = sorted({d["kind"] for d in docs})
print(f"     the manifest: {len(docs)} documents ({', '.join(kinds)})", flush=True)
harness = {"a": A, "b": B}


def render_config(text):
    cfg = json.loads(text)
    cfg["kafka"].update({"brokers": BROKERS, "topic_prefix": PREFIX, "partitions": 3, "replication_factor": 1})
    for i in cfg["instances"]:
        h = harness[i["name"]]
        i["url"] = h["url"]
        # the manifest's URL keeps its password in ${PGPASSWORD}; the harness's trusts loopback
        i["database"] = h["db"]
    return json.dumps(cfg, indent=2)


ports, pods, claims, out = {}, [], [], []
for d in docs:
    kind = d["kind"]
    if kind == "ConfigMap":
        d["data"]["dxsync.json"] = render_config(d["data"]["dxsync.json"])
        out.append(d)
    elif kind in ("Deployment", "StatefulSet"):
        spec = d["spec"]
        for n in range(spec.get("replicas", 1)):
            name = f"{d['metadata']['name']}-{n}"
            t = copy.deepcopy(spec["template"])
            pod = {"apiVersion": "v1", "kind": "Pod",
                   "metadata": {"name": name, "labels": t["metadata"].get("labels", {}),
                                "annotations": t["metadata"].get("annotations", {})},
                   "spec": t["spec"]}
            pod["spec"]["hostNetwork"] = True
            pod["spec"]["hostname"] = name
            for vct in spec.get("volumeClaimTemplates", []):
                claim = f"{vct['metadata']['name']}-{name}"
                claims.append(claim)
                out.append({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": claim},
                            "spec": vct["spec"]})
                pod["spec"].setdefault("volumes", []).append(
                    {"name": vct["metadata"]["name"], "persistentVolumeClaim": {"claimName": claim}})
            for c in pod["spec"]["containers"]:
                port = free_port()
                ports[name] = port
                c["image"] = TAG
                args = c["args"]
                args[args.index("--metrics-addr") + 1] = f"127.0.0.1:{port}"
                # podman publishes a containerPort, which host networking refuses (every port
                # is the host's there)
                c.pop("ports", None)
                for probe in ("livenessProbe", "readinessProbe"):
                    if probe in c:
                        c[probe]["httpGet"]["port"] = port
            pods.append(pod)
            out.append(pod)
    elif kind == "Secret":
        # podman 4.3 stores a played Secret as its YAML and then cannot read it back; this is
        # the format its envFrom reads: a JSON object of base64 values.
        keys = list(d.get("stringData", {})) + list(d.get("data", {}))
        values = {"DXSYNC_TOKEN_A": A["sync"], "DXSYNC_TOKEN_B": B["sync"], "PGPASSWORD": "unused-here"}
        check(sorted(keys) == sorted(values), f"the manifest's Secret names the keys the test fills ({keys})")
        blob = json.dumps({k: base64.b64encode(values[k].encode()).decode() for k in keys})
        podman("secret", "rm", SECRET, check_rc=False)
        r = subprocess.run(["podman", "secret", "create", SECRET, "-"], input=blob, text=True, capture_output=True)
        check(r.returncode == 0, f"podman secret {SECRET} created ({r.stderr.strip()[:200]})")
    elif kind == "Service":
        pass
    else:
        check(False, f"the manifest's {kind} is played or accounted for")

KUBE = os.path.join(TMP, "dxsync-played.yaml")
yaml.safe_dump_all(out, open(KUBE, "w"), sort_keys=False)
print(f"     played: {len(pods)} pods ({', '.join(p['metadata']['name'] for p in pods)}), "
      f"{len(claims)} claims", flush=True)
volumes_before = set(podman("volume", "ls", "-q").stdout.split())


def cleanup():
    podman("kube", "down", KUBE, check_rc=False)
    for p in pods:
        podman("pod", "rm", "-f", p["metadata"]["name"], check_rc=False)
    for v in set(podman("volume", "ls", "-q", check_rc=False).stdout.split()) - volumes_before:
        podman("volume", "rm", "-f", v, check_rc=False)
    podman("secret", "rm", SECRET, check_rc=False)


atexit.register(cleanup)
fresh_slot(A)
fresh_slot(B)
started = time.time()
r = podman("kube", "play", KUBE, check_rc=False)
if not check(r.returncode == 0, f"podman kube play starts the manifest ({time.time() - started:.1f} s)"
             f"{'' if r.returncode == 0 else ': ' + r.stderr.strip()[-400:]}"):
    finish(NAME)
ctr = {p["metadata"]["name"]: f"{p['metadata']['name']}-{p['spec']['containers'][0]['name']}" for p in pods}

# every container's log, followed to its end (kube down removes the containers)
followers = {}
for pod, c in ctr.items():
    f = open(os.path.join(TMP, f"{pod}.log"), "w")
    followers[pod] = (subprocess.Popen(["podman", "logs", "-f", c], stdout=f, stderr=subprocess.STDOUT), f)
waiters = {pod: subprocess.Popen(["podman", "wait", c], stdout=subprocess.PIPE, text=True) for pod, c in ctr.items()}


def healthy(pod):
    return podman("healthcheck", "run", ctr[pod], check_rc=False).returncode == 0


for pod in ctr:
    ok = wait_for(lambda: healthy(pod), 90, 0.25)
    check(ok, f"{pod}: its httpGet probe passes {time.time() - started:.1f} s after kube play")
for pod, c in ctr.items():
    user = podman("top", c, "user", check_rc=False).stdout.split()
    check(user[1:] == ["nobody"], f"{pod}: runs as nobody (65534), not root ({user[1:]})")


def metric(pod, name):
    text = urllib.request.urlopen(f"http://127.0.0.1:{ports[pod]}/metrics", timeout=5).read().decode()
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.split()[-1])
    return None


for src in ("a", "b"):
    mine = [p for p in ctr if p.startswith(f"dxsync-producer-{src}-")]
    ok = wait_for(lambda: sorted(metric(p, "dxsync_producer_active") or 0 for p in mine) == [0, 1], 60)
    check(ok, f"producers of {src}: one holds the slot, the other stands by "
              f"({[(p, metric(p, 'dxsync_producer_active')) for p in mine]})")
for pod in (p for p in ctr if "-consumer-" in p):
    store = podman("exec", ctr[pod], "ls", "/var/lib/dxsync", check_rc=False).stdout.split()
    remote = pod.split("-")[2]
    check(f"{PREFIX}.apply.{remote}.{pod}" in store,
          f"{pod}: member name is its pod name, its store in its claim state-{pod} ({store})")

ka, kb = uid(), uid()
api(A, "POST", "/items/articles", {"id": ka, "title": "kube a", "body": "played"})
api(B, "POST", "/items/articles", {"id": kb, "title": "kube b", "body": "played"})
check(wait_for(lambda: items(B, "articles", "id,title,body").get(ka, {}).get("body") == "played", 60),
      "an item created on a arrives on b, title and body (the manifest's route a -> b)")
check(wait_for(lambda: items(A, "articles", "id,title,body").get(kb, {}).get("body") == "played", 60),
      "an item created on b arrives on a (the route b -> a)")

# podman 4.3's kube down stops pods with a timeout of 0 (SIGKILL right after SIGTERM; later
# podman waits each container's stop timeout) and does not map terminationGracePeriodSeconds.
# So each pod is stopped first as the kubelet stops it, SIGTERM and the manifest's grace period,
# then kube down removes what is stopped.
graces = {}
for p in pods:
    graces.setdefault(p["spec"].get("terminationGracePeriodSeconds", 30), []).append(p["metadata"]["name"])
t = time.time()
for grace, names in sorted(graces.items()):
    r = podman("pod", "stop", "-t", str(grace), *names, check_rc=False, timeout=grace + 60)
    check(r.returncode == 0, f"podman pod stop -t {grace} (the grace period) {' '.join(names)}")
took = time.time() - t
r = podman("kube", "down", KUBE, check_rc=False, timeout=300)
check(r.returncode == 0, f"stopped in {took:.1f} s, then podman kube down removes the pods "
                         f"({time.time() - t - took:.1f} s)")
for pod in ctr:
    try:
        rc = waiters[pod].communicate(timeout=30)[0].strip()
    except subprocess.TimeoutExpired:
        rc = "still running"
    proc, f = followers[pod]
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
    f.close()
    log = open(f.name).read()
    check(rc == "0" and "event=stopped" in log, f"{pod}: SIGTERM stopped it cleanly (exit {rc})")
    check(not [s for s in (A["sync"], B["sync"]) if s in log], f"{pod}: no token in its log")
left = [c for c in podman("ps", "-a", "--format", "{{.Names}}").stdout.split() if c in ctr.values()]
check(not left, f"no container of the manifest is left ({left})")
kept = set(claims) & set(podman("volume", "ls", "-q").stdout.split())
check(kept == set(claims), f"the claims outlive the pods, as a StatefulSet's do ({sorted(kept)})")
finish(NAME)
