#!/usr/bin/env python3
"""End-to-end: a full mesh of three Directus instances (a, b, c), routes with different field
lists per direction, a uuid-key and an integer-key collection. A randomised workload of
creates, updates, batch updates and deletes on all three, on distinct items per instance; when
the consumers are idle every instance holds exactly the routed fields of every item, and
changes written by the sync users are never sent back (events per topic = changes made by
people). Then: audit prints one item's history, and replay --since restores wiped items.
The run prints its seed; DXSYNC_SEED=<seed> repeats its workload (each instance's sequence of
changes; the three run concurrently). Files travel too: an image made on a and one made on c
reach the other two with their bytes (the consumers read them from their sources).

--secure (CI runs it so, issue 28): the same over production transport. Kafka is the harness's
SASL_SSL broker (SCRAM-SHA-512, a private CA, no ACL = no access) with one principal per program
and instance, each granted exactly what its `acls` prints, on topics created beforehand from the
same output (no Create); the operator's commands (audit, replay) run as a principal of their own
with the ACLs README gives them. The producers reach PostgreSQL with sslmode=verify-full; c's
Directus is reached over HTTPS with a CA of its own (instances[].ca_file). Every process gets
only its own secrets: a producer its database and token, a consumer its remote's token and the
tokens of the sources whose files it reads."""
import hashlib, json, os, random, subprocess, sys, threading, time, urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from dx import *  # noqa: E402,F401,F403
import dx  # noqa: E402
import secure  # noqa: E402

SECURE = "--secure" in sys.argv[1:]

SEED = seed("mesh")
A, B, C = inst("a"), inst("b"), inst("c")
ALL = [A, B, C]
PREFIX = f"e2e{int(time.time() * 1000) % 10**9}"
# Different fields per direction; every outgoing union covers title, body and rating, so every
# update a person makes is an event.
ROUTES = {
    ("a", "b"): {"articles": ["title", "rating"], "counters": ["name", "value"]},
    ("a", "c"): {"articles": ["title", "body", "rating"], "counters": ["value"]},
    ("b", "a"): {"articles": ["title", "body"], "counters": ["name", "value"]},
    ("b", "c"): {"articles": ["rating"], "counters": ["name"]},
    ("c", "a"): {"articles": ["title"], "counters": ["name", "value"]},
    ("c", "b"): {"articles": ["title", "body", "rating"], "counters": ["value"]},
}
# Related collections in every direction: posts.author is a many-to-one to authors (issue 12).
RELATED = {"authors": ["name"], "posts": ["title", "author"],
           "directus_files": ["title", "filename_download"]}
for _cols in ROUTES.values():
    _cols.update(RELATED)
# A database password the logs must never show (trust authentication ignores it).
DBPW = "e2e-db-pw-" + uid()[:8]
def with_pw(db):
    return db.replace("postgresql://postgres@", f"postgresql://postgres:{DBPW}@")
# Every secret comes from the environment of the process that needs it (ENVS).
U = {i["name"]: i["name"].upper() for i in ALL}
kafka = {"brokers": BROKERS, "topic_prefix": PREFIX, "partitions": 3}
url = {i["name"]: i["url"] for i in ALL}
ca_file = {}
if SECURE:
    KS = secure.SecureKafka()
    kafka.update(brokers=KS.brokers, properties=KS.properties())
    dx.KCAT = KS.kcat()
    url["c"], ca_file["c"] = secure.https_front("c", C["url"])
    print(f"     Kafka {KS.brokers} (SASL_SSL), PostgreSQL verify-full, Directus c {url['c']} (its own CA)", flush=True)
cfg = {"kafka": kafka,
       "instances": [dict({"name": n, "url": url[n], "token": f"${{TOKEN_{U[n]}}}", "database": f"${{DB_{U[n]}}}"},
                          **({"ca_file": ca_file[n]} if n in ca_file else {})) for n in "abc"],
       "routes": [{"from": f, "to": t, "collections": [{"collection": c, "fields": fl} for c, fl in cols.items()]}
                  for (f, t), cols in ROUTES.items()],
       # a short session: replay waits for a stopped (static) consumer to leave the group
       "consumer": {"retry_notify_after_s": 5, "parent_wait_s": 15, "session_timeout_ms": 6000}}
CFG = os.path.join(TMP, "cfg.json")
json.dump(cfg, open(CFG, "w"))
P, CONS = f"{BIN}/producer/dxsync-producer", f"{BIN}/consumer/dxsync-consumer"
TLS_DB = f"?sslmode=verify-full&sslrootcert={ENV.get('DXSYNC_PG_CA', '')}" if SECURE else ""
PW = {}
ENVS = {}
for i in ALL:
    n = i["name"]
    for who in (f"prod-{n}", f"cons-{n}"):
        PW[who] = secure.password()
    ENVS[f"producer-{n}"] = {"KS_USER": f"prod-{n}", "KS_PASSWORD": PW[f"prod-{n}"],
                             f"DB_{U[n]}": with_pw(i["db"]) + TLS_DB, f"TOKEN_{U[n]}": i["sync"]}
    # its remote's token, and its sources' (file bytes are read from them)
    ENVS[f"consumer-{n}"] = dict({"KS_USER": f"cons-{n}", "KS_PASSWORD": PW[f"cons-{n}"]},
                                 **{f"TOKEN_{U[j['name']]}": j["sync"] for j in ALL})
PW["ops"] = secure.password()
ENVS["ops"] = {"KS_USER": "ops", "KS_PASSWORD": PW["ops"]}


def run(who, *args):
    """A dxsync command as who (producer-a, consumer-b, ops) with its own secrets only."""
    return subprocess.run(list(args), capture_output=True, text=True, env={**ENV, **ENVS[who]})


if SECURE:
    lines = [f"user {who} {pw}" for who, pw in PW.items()]
    for i in ALL:
        n = i["name"]
        for who, cmd in ((f"producer-{n}", [P, "--config", CFG, "--instance", n, "acls"]),
                         (f"consumer-{n}", [CONS, "--config", CFG, "--remote", n, "acls"])):
            out = run(who, *cmd)
            check(out.returncode == 0 and "kafka-acls.sh" in out.stdout, f"{who} acls ({out.stderr.strip()[:200]})")
            lines += secure.acl_lines(out.stdout)
    # the operator's principal, as README's table gives it: audit reads every topic and its
    # group; replay moves b's group
    lines += [f"kafka-acls.sh --add --allow-principal User:ops --operation Read --operation Describe "
              f"--topic {PREFIX}. --resource-pattern-type prefixed",
              f"kafka-acls.sh --add --allow-principal User:ops --operation Read --group {PREFIX}.audit --group {PREFIX}.apply.b"]
    summary = KS.admin(lines)
    check(summary.startswith("users 7,"), f"the admin made 7 principals, the topics acls names and their ACLs ({summary})")

for i in ALL:
    fresh_slot(i)
for i in ALL:
    start(f"producer-{i['name']}", P, "--config", CFG, "--instance", i["name"], "--log-level", "debug",
          "--metrics-addr", f"127.0.0.1:{29470 + ALL.index(i)}", env=ENVS[f"producer-{i['name']}"])
    start(f"consumer-{i['name']}", CONS, "--config", CFG, "--remote", i["name"], env=ENVS[f"consumer-{i['name']}"])
check(wait_for(lambda: all("event=streaming" in log_of(f"producer-{i['name']}") for i in ALL), 30),
      "three producers stream")
check(wait_for(lambda: all("partition_assigned" in log_of(f"consumer-{i['name']}") for i in ALL), 60),
      "three consumers are assigned their partitions")

# ---- workload: each instance works on items of its own; integer keys in its own range
RUN = (int(time.time()) % 100000) * 1000
BASE = {"a": RUN, "b": RUN + 300, "c": RUN + 600}
created = {i["name"]: {"articles": [], "counters": []} for i in ALL}
deleted = {i["name"]: {"articles": set(), "counters": set()} for i in ALL}
ops = {i["name"]: 0 for i in ALL}
errors = []


def rnd_article(rng):
    return {"title": f"t{rng.randint(0, 10**6)}", "body": rng.choice(["", "body ü ✓", "x" * 50, None]),
            "rating": rng.randint(-1000, 1000)}


def work(i):
    try:
        n = i["name"]
        rng = random.Random(f"{SEED}-{n}")   # one sequence per instance: the threads interleave
        arts = [dict(id=uid(), **rnd_article(rng)) for _ in range(24)]
        api(i, "POST", "/items/articles", arts[:12])                       # a batch create
        for a in arts[12:]:
            api(i, "POST", "/items/articles", a)                           # single creates
        ctrs = [{"id": BASE[n] + k, "name": f"c{k}", "value": k} for k in range(12)]
        api(i, "POST", "/items/counters", ctrs)
        # related items: authors and posts in this instance's key range
        api(i, "POST", "/items/authors", [{"id": BASE[n] + k, "name": f"{n}-author-{k}"} for k in range(4)])
        api(i, "POST", "/items/posts", [{"id": BASE[n] + k, "title": f"{n}-post-{k}", "author": BASE[n] + k % 4}
                                        for k in range(6)])
        created[n]["articles"] = [a["id"] for a in arts]
        created[n]["counters"] = [str(c["id"]) for c in ctrs]
        ops[n] += 24 + 12
        for _ in range(40):
            r = rng.random()
            live = [k for k in created[n]["articles"] if k not in deleted[n]["articles"]]
            livec = [k for k in created[n]["counters"] if k not in deleted[n]["counters"]]
            if r < 0.45 and live:
                k = rng.choice(live)
                api(i, "PATCH", f"/items/articles/{k}", {f: v for f, v in rnd_article(rng).items() if rng.random() < 0.6} or {"title": "x"})
                ops[n] += 1
            elif r < 0.65 and len(live) >= 3:
                keys = rng.sample(live, 3)
                api(i, "PATCH", "/items/articles", {"keys": keys, "data": {"rating": rng.randint(0, 9)}})
                ops[n] += 3
            elif r < 0.8 and livec:
                k = rng.choice(livec)
                api(i, "PATCH", f"/items/counters/{k}", {"value": rng.randint(0, 99), "name": f"n{rng.randint(0, 99)}"})
                ops[n] += 1
            elif r < 0.92 and live:
                k = rng.choice(live)
                api(i, "DELETE", f"/items/articles/{k}")
                deleted[n]["articles"].add(k)
                ops[n] += 1
            elif livec:
                k = rng.choice(livec)
                api(i, "DELETE", f"/items/counters/{k}")
                deleted[n]["counters"].add(k)
                ops[n] += 1
    except Exception as e:  # noqa: BLE001
        errors.append(f"{i['name']}: {e}")


threads = [threading.Thread(target=work, args=(i,)) for i in ALL]
for t in threads:
    t.start()
for t in threads:
    t.join()
check(not errors, f"workload ran on a, b and c ({sum(ops.values())} changes) {errors}")


def diff():
    """Differences between what each source holds and what each remote holds, per route."""
    out = []
    state = {(i["name"], c): items(i, c) for i in ALL for c in ("articles", "counters")}
    for (f, t), cols in ROUTES.items():
        for coll, fields in cols.items():
            if coll in RELATED:
                continue  # rel_diff
            src, dst = state[(f, coll)], state[(t, coll)]
            for k in created[f][coll]:
                if k in deleted[f][coll]:
                    if k in dst:
                        out.append(f"{f}->{t} {coll} {k}: deleted on {f}, still on {t}")
                    continue
                if k not in src:
                    out.append(f"{f} {coll} {k}: missing on its own source")
                    continue
                if k not in dst:
                    out.append(f"{f}->{t} {coll} {k}: missing on {t}")
                    continue
                all_fields = ["title", "body", "rating"] if coll == "articles" else ["name", "value"]
                for fld in all_fields:
                    want = src[k][fld] if fld in fields else None   # never sent: never set
                    if dst[k][fld] != want:
                        out.append(f"{f}->{t} {coll} {k}.{fld}: {dst[k][fld]!r} on {t}, want {want!r}")
    return out


d = []
def converged():
    global d
    d = diff()
    return not d
ok = wait_for(converged, 120, 2)
check(ok, "every instance holds exactly the routed fields of every item" + ("" if ok else f": {len(d)} differences, e.g. {d[:5]}"))

# ---- related items across instances: posts re-pointed to authors made on another instance,
# and new posts of another instance's new authors (which may reach the third one after them)
POSTS = {n: [BASE[n] + k for k in range(6)] for n in BASE}
for i in ALL:
    n, nxt = i["name"], "abc"["abc".index(i["name"]) - 2]
    for k in range(3):
        api(i, "PATCH", f"/items/posts/{BASE[n] + k}", {"author": BASE[nxt] + k})
    api(i, "POST", "/items/authors", {"id": BASE[n] + 10, "name": f"{n}-late"})
    api(i, "POST", "/items/posts", {"id": BASE[n] + 10, "title": f"{n}-late", "author": BASE[n] + 10})
    POSTS[n].append(BASE[n] + 10)
rd = []
def rel_converged():
    global rd
    rd = []
    state = {i["name"]: items(i, "posts", "id,title,author") for i in ALL}
    for n, keys in POSTS.items():
        for k in map(str, keys):
            want = state[n].get(k)
            for t in "abc":
                got = state[t].get(k)
                if want is None or got is None or (got["title"], got["author"]) != (want["title"], want["author"]):
                    rd.append(f"posts {k} from {n}: {got} on {t}, want {want}")
    return not rd
ok = wait_for(rel_converged, 120, 2)
check(ok, "posts and their authors agree on a, b and c, also pointing across instances"
      + ("" if ok else f": {len(rd)} differences, e.g. {rd[:3]}"))

# ---- files: an image made on a and one made on c (behind HTTPS in --secure) reach the other two
# with their bytes; each consumer reads them from their source with that source's token
imgs = {}
for i in (A, C):
    path = os.path.join(TMP, f"img-{i['name']}.png")
    with open(path, "wb") as f:
        f.write(png(32 + ALL.index(i), 24))
    fid = upload(i, path, "image/png", f"from-{i['name']}.png", fid=uid(), title=f"made on {i['name']}")["id"]
    imgs[fid] = (i, hashlib.sha256(open(path, "rb").read()).hexdigest())
def files_converged():
    return all(asset_sha(j, fid) == sha for fid, (i, sha) in imgs.items() for j in ALL if j is not i)
check(wait_for(files_converged, 120, 1), "the images of a and c are on the other two instances, bytes included")
check(all((file_on(j, fid, "title") or {}).get("title") == f"made on {i['name']}" for fid, (i, _) in imgs.items() for j in ALL),
      "... with their titles")
check(topic(f"{PREFIX}.errors") == [], "nothing was dead-lettered so far")

# ---- sync users' writes are never sent back: events per topic = changes people made there.
# Their writes are done (converged); a marker change per instance and collection, made after
# them, must be on its topic before the topics are read: a write sent back would be before it.
marks = {}
for i in ALL:
    n = i["name"]
    marks[(n, "articles")] = api(i, "POST", "/items/articles", {"id": uid(), "title": "marker"})["data"]["id"]
    marks[(n, "counters")] = str(api(i, "POST", "/items/counters", {"id": BASE[n] + 299, "name": "marker"})["data"]["id"])
check(wait_for(lambda: all(any(m["key"] == k for m in topic(f"{PREFIX}.{n}.{c}")) for (n, c), k in marks.items()), 60, 1),
      "a marker change per instance and collection reaches its topic")
for i in ALL:
    n = i["name"]
    for coll in ("articles", "counters"):
        evs = [json.loads(m["payload"]) for m in topic(f"{PREFIX}.{n}.{coll}")]
        users = {e["user"] for e in evs}
        ids = {e["event_id"] for e in evs}
        check(i["sync_id"] not in users, f"{n}.{coll}: no event by {n}'s sync user ({len(evs)} events)")
        check(len(ids) == len(evs), f"{n}.{coll}: no event twice")
        mine = {e["activity_id"] for e in evs}
        since = psql(i["db"], f"select coalesce(min(id), 0) from directus_activity where collection='{coll}' "
                              f"and item = any(array{[str(x) for x in created[n][coll]] or ['-']})").strip()
        acts = set(int(x) for x in psql(i["db"], f"select id from directus_activity where collection='{coll}' and "
                   f"action in ('create','update','delete') and \"user\"='{i['admin_id']}' and id >= {since}").split())
        check(mine == acts, f"{n}.{coll}: one event per change made on {n} ({len(mine)} events, {len(acts)} changes)")

# ---- audit: the history of one item
k = next(k for k in created["a"]["articles"] if k in deleted["a"]["articles"]) if deleted["a"]["articles"] else created["a"]["articles"][0]
out = run("ops", CONS, "--config", CFG, "audit", "--source", "a", "--collection", "articles", "--key", k)
lines = [l for l in out.stdout.splitlines() if not l.startswith("#")]
evs = [json.loads(m["payload"]) for m in topic(f"{PREFIX}.a.articles") if m["key"] == k]
check(out.returncode == 0 and len(lines) == len(evs) and lines and " create " in lines[0]
      and (k not in deleted["a"]["articles"] or " delete " in lines[-1]),
      f"audit prints the item's {len(evs)} events oldest first ({lines[:1]} ... {lines[-1:]})")
jout = run("ops", CONS, "--config", CFG, "audit", "--source", "a", "--collection", "articles", "--key", k, "--json").stdout.splitlines()
check([json.loads(l)["event_id"] for l in jout] == [e["event_id"] for e in evs], "audit --json prints the raw envelopes")

# ---- replay: wipe some items on b (as its sync user: not sent anywhere), stop b's consumer,
# replay the last hour, start it again: they come back.
stop("consumer-b")
gone = [k for k in created["a"]["articles"] if k not in deleted["a"]["articles"]][:5]
for k in gone:
    api(B, "DELETE", f"/items/articles/{k}", token=B["sync"])
check(all(k not in items(B, "articles") for k in gone), f"{len(gone)} items wiped on b")
rp = run("ops", CONS, "--config", CFG, "--remote", "b", "replay", "--since", "1h")
check(rp.returncode == 0 and f"{PREFIX}.a.articles" in rp.stdout, "replay --since 1h moves b's group back")
start("consumer-b", CONS, "--config", CFG, "--remote", "b", env=ENVS["consumer-b"])
ok = wait_for(converged, 120, 2)
check(ok, "after the replay, b holds the wiped items again and everything else as before" + ("" if ok else f": {d[:5]}"))
busy = run("ops", CONS, "--config", CFG, "--remote", "b", "replay", "--since", "1h")
check(busy.returncode == 1 and "active member" in busy.stderr, "replay refuses while b's consumer runs")

# ---- audit across sources: a post made on a, edited on b; its author exists on a and b only
# (written there by SQL: never published), so c dead-letters both events (PARENT_MISSING)
aid = BASE["a"] + 50
for i in (A, B):
    psql(i["db"], f"insert into authors (id, name) values ({aid}, 'local only')")
pk = BASE["a"] + 50
api(A, "POST", "/items/posts", {"id": pk, "title": "audited", "author": aid})
check(wait_for(lambda: str(pk) in items(B, "posts", "id"), 60, 1), "the audited post reaches b")
api(B, "PATCH", f"/items/posts/{pk}", {"title": "audited, edited on b"})
check(wait_for(lambda: items(A, "posts", "id,title").get(str(pk), {}).get("title") == "audited, edited on b", 60, 1),
      "b's edit reaches a")
def both_dead():
    errs = [json.loads(m["payload"]) for m in topic(f"{PREFIX}.errors")]
    return len([e for e in errs if e.get("code") == "PARENT_MISSING" and str(e.get("key")) == str(pk)
                and e.get("remote") == "c"]) >= 2
check(wait_for(both_dead, 90, 2), "c dead-letters both events of the post (its author never reaches c)")
if SECURE:
    # The operator's principal may read b's group (replay) but not yet a's and c's: audit says so
    # and shows their states as unknown, never as pending; then the admin grants what README's
    # table gives audit (Describe on every remote's group).
    au = run("ops", CONS, "--config", CFG, "audit", "--collection", "posts", "--key", str(pk))
    check(au.returncode == 0 and "a=unknown(" in au.stdout and "b=applied" in au.stdout
          and f"cannot read the committed offsets of group {PREFIX}.apply.a" in au.stderr
          and "needs Describe on that group" in au.stderr,
          f"audit without Describe on a's group: its states unknown, and why ({au.stderr.strip()[:300]})")
    KS.admin([f"kafka-acls.sh --add --allow-principal User:ops --operation Describe --group {PREFIX}.apply.{n}" for n in "ac"])
au = run("ops", CONS, "--config", CFG, "audit", "--collection", "posts", "--key", str(pk))
lines = [l for l in au.stdout.splitlines() if not l.startswith("#")]
print("     " + "\n     ".join(au.stdout.splitlines()), flush=True)
check(au.returncode == 0 and len(lines) == 2 and " a " in lines[0] and " create " in lines[0]
      and " b " in lines[1] and " update " in lines[1],
      "audit without --source lists the events of both sources, oldest first")
check("b=applied" in lines[0] and "c=dead-lettered(PARENT_MISSING)" in lines[0]
      and "a=applied" in lines[1] and "c=dead-lettered(PARENT_MISSING)" in lines[1],
      "... each applied on one remote and dead-lettered on the other")
aj = run("ops", CONS, "--config", CFG, "audit", "--collection", "posts", "--key", str(pk), "--json")
js = [json.loads(l) for l in aj.stdout.splitlines()]
check(len(js) == 2 and js[0]["event"]["source"] == "a" and js[0]["remotes"] == {"b": "applied", "c": "dead-lettered(PARENT_MISSING)"},
      "audit --json gives each event with its state per remote")

# ---- secrets: tokens and the database password appear in no log, metric or event
metrics = "".join(urllib.request.urlopen(f"http://127.0.0.1:{29470 + k}/metrics").read().decode() for k in range(3))
events = "".join(m["payload"] for n in "abc" for c in ("articles", "counters") for m in topic(f"{PREFIX}.{n}.{c}"))
events += "".join(m["payload"] for m in topic(f"{PREFIX}.errors"))
for n in list(procs):
    check(stop(n) == 0, f"{n} stops cleanly on SIGTERM")
logs = "".join(log_of(n) for n in os.listdir(TMP) if n.endswith(".log") for n in [n[:-4]])
secrets = [i["sync"] for i in ALL] + [i["admin"] for i in ALL] + [DBPW] + (list(PW.values()) if SECURE else [])
check(len(logs) > 1000 and len(metrics) > 100 and len(events) > 1000, f"logs ({len(logs)} bytes), metrics and events to search")
for where, text in (("logs", logs), ("metrics", metrics), ("events", events)):
    check(not any(sec in text for sec in secrets),
          f"no token, database password{' or SCRAM password' if SECURE else ''} in the {where}")
finish("mesh")
