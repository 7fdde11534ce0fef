#!/usr/bin/env python3
"""Related collections (issue 12): authors <- posts.author (many-to-one, ON DELETE SET NULL),
tags, and the junction posts_tags of the many-to-many posts.tags, routed a -> b.

1. While b's consumer is down: 60 nested writes on a (a post with a new or an existing author
   and new and existing tags, in one request: one transaction over three or four collections).
   b's consumer then starts on a backlog where children come before their parents.
2. Live: posts re-pointed to authors created just before, authors deleted (SET NULL on both
   sides, by each side's own foreign key), existing tags attached to posts.
3. Every row of the four collections is equal on a and b; nothing dead-lettered.
4. A parent that never comes (an author written on a by SQL, so no event carries it): the post
   pointing at it waits on b while the posts after it apply, and after consumer.parent_wait_s
   it is dead-lettered as PARENT_MISSING naming the field and the key.

One row goes to $DXSYNC_RUN/relations-table.txt."""
import json, os, random, subprocess, sys, time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from dx import *  # noqa: E402,F401,F403

NAME = "relations"
SEED = seed(NAME)
A, B = inst("a"), inst("b")
PARENT_WAIT_S = 20
NESTED = int(ENV.get("DXSYNC_RELATIONS_WRITES", "60"))
PREFIX = f"rel{int(time.time() * 1000) % 10**9}"
COLLS = {"authors": ["name"], "tags": ["name"], "posts": ["title", "author"],
         "posts_tags": ["posts_id", "tags_id"]}
cfg = {"kafka": {"brokers": BROKERS, "topic_prefix": PREFIX, "partitions": 3},
       "instances": [{"name": i["name"], "url": i["url"], "token": i["sync"], "database": i["db"]} for i in (A, B)],
       "routes": [{"from": "a", "to": "b",
                   "collections": [{"collection": c, "fields": f} for c, f in COLLS.items()]}],
       "consumer": {"retry_notify_after_s": 5, "parent_wait_s": PARENT_WAIT_S}}
CFG = os.path.join(TMP, "cfg.json")
json.dump(cfg, open(CFG, "w"))
P, CONS = f"{BIN}/producer/dxsync-producer", f"{BIN}/consumer/dxsync-consumer"

# a clean slate on both sides (SQL: no activity, nothing published)
for i in (A, B):
    psql(i["db"], "TRUNCATE posts_tags, posts, tags, authors RESTART IDENTITY")
fresh_slot(A)

# check teaches what a relational route needs
ck = subprocess.run([P, "--config", CFG, "--instance", "a", "check"], capture_output=True, text=True)
check("posts\" points at" not in ck.stdout, "producer check: every many-to-one's parent is routed")
bad = dict(cfg, routes=[{"from": "a", "to": "b", "collections": [
    {"collection": "posts", "fields": ["title", "author", "tags"]}]}])
BADCFG = os.path.join(TMP, "bad.json")
json.dump(bad, open(BADCFG, "w"))
ck = subprocess.run([P, "--config", BADCFG, "--instance", "a", "check"], capture_output=True, text=True)
check("\"posts.author\" points at \"authors\", which no route carries" in ck.stdout,
      "producer check warns about a many-to-one whose parent no route carries")
check("route collection \"posts_tags\" (its junction)" in ck.stdout,
      "producer check names the junction of a many-to-many alias")
print("     " + "\n     ".join(l for l in ck.stdout.splitlines() if "posts" in l), flush=True)

ck = subprocess.run([CONS, "--config", CFG, "--remote", "b", "check"], capture_output=True, text=True)
check(ck.returncode == 0 and "\"posts.author\" is a many-to-one to \"authors\" on a and b alike (on delete SET NULL)" in ck.stdout,
      "consumer check: the relations are the same on a and b")
# (the relation named in the body too: Directus 11 dies on a PATCH without it, issue 29)
REL = {"collection": "posts", "field": "author", "related_collection": "authors"}
api(B, "PATCH", "/relations/posts/author", dict(REL, schema={"on_delete": "CASCADE"}))
ck = subprocess.run([CONS, "--config", CFG, "--remote", "b", "check"], capture_output=True, text=True)
check(ck.returncode == 1 and "\"posts.author\" deletes children's link with \"SET NULL\" on a and \"CASCADE\" on b" in ck.stdout,
      "consumer check: a relation deleting differently on b is a problem")
api(B, "PATCH", "/relations/posts/author", dict(REL, schema={"on_delete": "SET NULL"}))

start("producer-a", P, "--config", CFG, "--instance", "a")
check(wait_for(lambda: "event=streaming" in log_of("producer-a"), 30), "a's producer streams")
pub = psql(A["db"], "select string_agg(tablename, ',' order by tablename) from pg_publication_tables where pubname = 'dxsync_a'").strip()
check(all(c in pub.split(",") for c in COLLS), f"publication dxsync_a covers the routed tables ({pub})")

# ---- 1. nested writes while b's consumer is down
tags = [api(A, "POST", "/items/tags", {"name": f"tag-{n}"})["data"]["id"] for n in range(5)]
authors = []
for n in range(NESTED):
    body = {"title": f"post-{n}"}
    if not authors or random.random() < 0.6:
        body["author"] = {"name": f"author-{n}"}
    else:
        body["author"] = random.choice(authors)
    links = [{"tags_id": {"name": f"new-tag-{n}"}}] if random.random() < 0.5 else []
    links += [{"tags_id": t} for t in random.sample(tags, random.randint(0, 2))]
    if links:
        body["tags"] = links
    got = api(A, "POST", "/items/posts", body)["data"]
    if isinstance(body["author"], dict):
        authors.append(got["author"])
check(wait_for(lambda: len(topic(f"{PREFIX}.a.posts")) >= NESTED, 60, 1),
      f"{NESTED} nested writes are published")
nested_posts = [json.loads(m["payload"]) for m in topic(f"{PREFIX}.a.posts")]
check(all(e["data"].get("author") for e in nested_posts),
      "every post event carries its author (the row, not the revision)")

# ---- 2. b's consumer meets children before parents; then live changes
start("consumer-b", CONS, "--config", CFG, "--remote", "b")
posts = sorted(items(A, "posts", "id"))
for n in range(10):  # re-point posts to authors created a moment before
    aid = api(A, "POST", "/items/authors", {"name": f"late-{n}"})["data"]["id"]
    api(A, "PATCH", f"/items/posts/{random.choice(posts)}", {"author": aid})
for aid in random.sample(authors, 5):  # deletes: ON DELETE SET NULL on each side
    api(A, "DELETE", f"/items/authors/{aid}")
for p in random.sample(posts, 10):  # attach existing tags
    api(A, "PATCH", f"/items/posts/{p}", {"tags": {"create": [{"tags_id": random.choice(tags)}],
                                                 "update": [], "delete": []}})


def rows(i):
    return {c: {k: {f: v[f] for f in COLLS[c]} for k, v in items(i, c, "id," + ",".join(COLLS[c])).items()}
            for c in COLLS}


diff = []
def equal():
    global diff
    ra, rb = rows(A), rows(B)
    diff = [(c, k, ra[c].get(k), rb[c].get(k)) for c in COLLS for k in set(ra[c]) | set(rb[c])
            if ra[c].get(k) != rb[c].get(k)]
    return not diff


t1 = time.time()
ok = wait_for(equal, 180, 2)
took = time.time() - t1
ra = rows(A)
counts = {c: len(ra[c]) for c in COLLS}
check(ok, f"every row of the four collections is equal on a and b ({counts}; {len(diff)} differ, e.g. {diff[:3]})")
check(sum(1 for v in ra["posts"].values() if v["author"] is None) >= 1,
      "deleted authors left posts without an author on both sides")
log = log_of("consumer-b")
waits = log.count("event=parent_wait ")
check(waits >= 1, f"children met before their parents waited for them ({waits} waits)")
dl = topic(f"{PREFIX}.dlq.b")
check(not dl, f"nothing dead-lettered ({len(dl)})")

# ---- 4. a parent that never comes
orphan_author = int(psql(A["db"], "insert into authors (name) values ('never synced') returning id").split()[0])
orphan = api(A, "POST", "/items/posts", {"title": "orphan", "author": orphan_author})["data"]["id"]
after = [api(A, "POST", "/items/posts", {"title": f"after-{n}", "author": authors[0] if authors[0] in ra["authors"] else None})["data"]["id"]
         for n in range(12)]
t_orphan = time.time()
check(wait_for(lambda: set(map(str, after)) <= set(items(B, "posts", "id")), 60, 1),
      "the posts written after the orphan apply while it waits")
check(time.time() - t_orphan < PARENT_WAIT_S and not topic(f"{PREFIX}.dlq.b"),
      "... before the orphan is dead-lettered")


def parent_missing():
    return [e for e in (json.loads(m["payload"]) for m in topic(f"{PREFIX}.errors"))
            if e.get("code") == "PARENT_MISSING" and str(e.get("key")) == str(orphan)]


check(wait_for(lambda: parent_missing(), PARENT_WAIT_S + 60, 2),
      f"after parent_wait_s ({PARENT_WAIT_S} s) the orphan is dead-lettered as PARENT_MISSING")
pm = parent_missing()
msg = pm[0]["message"] if pm else ""
check("\"author\"" in msg and str(orphan_author) in msg, f"the error names the field and the missing key ({msg})")
check(len(topic(f"{PREFIX}.dlq.b")) == 1, "one dead letter: the orphan")
check(str(orphan) not in items(B, "posts", "id"), "the orphan is not on b")

# dlq list shows it
env = dict(os.environ)
dlr = subprocess.run([CONS, "--config", CFG, "--remote", "b", "dlq", "list"], capture_output=True, text=True, env=env)
rows_ = [l for l in dlr.stdout.splitlines() if not l.startswith("#") and not l.startswith("TIME")]
check(dlr.returncode == 0 and len(rows_) == 1 and "PARENT_MISSING" in rows_[0] and " posts " in rows_[0]
      and f" {orphan} " in rows_[0], f"dlq list shows the orphan's dead letter ({rows_})")
js = subprocess.run([CONS, "--config", CFG, "--remote", "b", "dlq", "list", "--json", "--code", "PARENT_MISSING"],
                    capture_output=True, text=True)
jl = [json.loads(l) for l in js.stdout.splitlines()]
check(js.returncode == 0 and len(jl) == 1 and jl[0]["key"] == str(orphan) and jl[0]["action"] == "create"
      and jl[0]["status"] == 400 and jl[0]["topic"] == f"{PREFIX}.a.posts" and "author" in jl[0]["message"],
      f"dlq list --json --code PARENT_MISSING prints it as JSON ({jl})")
none = subprocess.run([CONS, "--config", CFG, "--remote", "b", "dlq", "list", "--code", "VALUE_TOO_LONG"],
                      capture_output=True, text=True)
check(none.returncode == 0 and "# 0 dead letters shown of 1" in none.stdout, "--code filters the list")

# ---- 5. dlq redrive: once each, never over newer writes
def redrive(*extra):
    r = subprocess.run([CONS, "--config", CFG, "--remote", "b", "dlq", "redrive", *extra],
                       capture_output=True, text=True)
    print("     " + "\n     ".join((r.stdout + r.stderr).strip().splitlines()), flush=True)
    return r


r1 = redrive()
check(r1.returncode == 1 and "failed again" in r1.stdout and "1 failed again" in r1.stdout,
      "redrive while the parent is still missing: it fails again, exit 1")
check(len(topic(f"{PREFIX}.dlq.b")) == 2, "... and is dead-lettered anew")
# the operator fixes the cause: the author exists on b now
api(B, "POST", "/items/authors", {"id": orphan_author, "name": "never synced"})
# a newer change of the orphan on a: it reaches b (created from its row)
api(A, "PATCH", f"/items/posts/{orphan}", {"title": "orphan, edited"})
check(wait_for(lambda: items(B, "posts", "id,title").get(str(orphan), {}).get("title") == "orphan, edited", 60, 1),
      "a newer change of the orphan reaches b once its author is there")
r2 = redrive()
check(r2.returncode == 0 and "b: 1 applied" in r2.stdout and "0 failed again" in r2.stdout,
      "redrive after the fix applies the letter, exit 0")
got = items(B, "posts", "id,title,author").get(str(orphan), {})
check(got.get("title") == "orphan, edited" and got.get("author") == orphan_author,
      f"the redrive wrote the author, not its older title over the newer one ({got})")
r3 = redrive()
check(r3.returncode == 0 and "b: 0 applied" in r3.stdout,
      "a second redrive applies nothing")

for name in list(procs):
    check(stop(name) == 0, f"{name} stops cleanly on SIGTERM")
scenario = f"{NAME}@{ENV['DXSYNC_STACK']}" if ENV.get("DXSYNC_STACK") else NAME  # stack: the versions' run
row = (f"{scenario:<12} {NESTED:>7} {counts['authors']:>8} {counts['posts']:>6} {counts['tags']:>5} "
       f"{counts['posts_tags']:>10} {waits:>12} {len(diff):>9} {len(dl):>5} {took:>8.1f}")
print("table row: " + row, flush=True)
with open(os.path.join(RUN, "relations-table.txt"), "a") as f:
    f.write(row + "\n")
finish(NAME)
