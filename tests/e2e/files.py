#!/usr/bin/env python3
"""Files travel with the content that uses them (issue 13). A route carries directus_files,
directus_folders and articles (whose cover is a many-to-one to directus_files) from a to b:

  - an image and a 50 MB file uploaded on a (the big one into a folder) land on b with the same
    ids and the same bytes (GET /assets/<id> compared by SHA-256); the article whose cover is the
    image points at it on b;
  - the 50 MB file replaced on a (new bytes, new type): b serves the new bytes;
  - its title edited on a: only the metadata moves (no transfer);
  - a file gone from a when the consumer reads its create: skipped, nothing dead-lettered;
  - the image deleted on a: gone on b, and the article's cover is null on both;
  - Directus b frozen, then killed, in the middle of a 200 MB transfer: once it is back the file
    lands complete, nothing dead-lettered;
  - a file record without bytes waits, is dead-lettered FILE_INCOMPLETE after parent_wait_s,
    and `dlq redrive` moves its bytes once a has them;
  - Directus a (the source) killed in the middle of a transfer: retried as an outage, the file
    lands complete, nothing dead-lettered;
  - the consumer's metrics count the bytes, the files and the transfer time;
  - verify --repair brings back a file deleted on b behind dxsync's back."""
import hashlib, json, os, random, signal, subprocess, sys, time, urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from dx import *  # noqa: E402,F401,F403

NAME = "files"
seed(NAME)
A, B = inst("a"), inst("b")
HARNESS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness")
PREFIX = f"fil{int(time.time() * 1000) % 10**9}"
METRICS = "127.0.0.1:29480"
cfg = {"kafka": {"brokers": BROKERS, "topic_prefix": PREFIX, "partitions": 3},
       "instances": [{"name": i["name"], "url": i["url"], "token": i["sync"], "database": i["db"]} for i in (A, B)],
       "routes": [{"from": "a", "to": "b", "collections": [
           {"collection": "directus_folders", "fields": ["name", "parent"]},
           {"collection": "directus_files", "fields": ["title", "description", "folder", "filename_download"]},
           {"collection": "articles", "fields": ["title", "cover"]}]}],
       "consumer": {"retry_notify_after_s": 5, "parent_wait_s": 30, "request_timeout_ms": 10000}}
CFG = os.path.join(TMP, "cfg.json")
json.dump(cfg, open(CFG, "w"))
P, CONS = f"{BIN}/producer/dxsync-producer", f"{BIN}/consumer/dxsync-consumer"


def transfers():
    return log_of("consumer-b").count("event=file_transferred")


def started(fid):
    return any("event=file_transfer " in l and fid in l for l in log_of("consumer-b").splitlines())


def die_mid_transfer(i, frozen=lambda: None):
    """Freezes Directus i (SIGSTOP: its side of a transfer stalls where it is), calls frozen(),
    kills it 2 s later and starts it again 6 s after that."""
    pid = int(open(os.path.join(RUN, f"directus-{i['name']}.pid")).read().strip())
    os.kill(pid, signal.SIGSTOP)
    at = time.time()
    frozen()
    time.sleep(2)
    os.kill(pid, signal.SIGKILL)
    subprocess.run([os.path.join(HARNESS, "directus.sh"), "stop", i["name"]], check=True, stdout=subprocess.DEVNULL)
    time.sleep(6)
    subprocess.run([os.path.join(HARNESS, "directus.sh"), "start", i["name"], i["url"].rsplit(":", 1)[1], i["db"]],
                   check=True, stdout=subprocess.DEVNULL)
    print(f"     Directus {i['name']} started again after {time.time() - at:.0f} s", flush=True)


def dead_letters():
    return [m for m in topic(f"{PREFIX}.dlq.b")] if topic_exists(f"{PREFIX}.dlq.b") else []


fresh_slot(A)
start("producer-a", P, "--config", CFG, "--instance", "a")
start("consumer-b", CONS, "--config", CFG, "--remote", "b", "--metrics-addr", METRICS)
check(wait_for(lambda: "event=streaming" in log_of("producer-a"), 30), "a's producer streams")
check(wait_for(lambda: "partition_assigned" in log_of("consumer-b"), 60), "b's consumer is assigned its partitions")

# ---- an image and a 50 MB file, an article with the image as its cover
folder = api(A, "POST", "/folders", {"name": f"media-{PREFIX}"})["data"]["id"]
img_path = os.path.join(TMP, "cover.png")
open(img_path, "wb").write(png(64, 48))
img_sha = hashlib.sha256(open(img_path, "rb").read()).hexdigest()
img = upload(A, img_path, "image/png", "cover.png", fid=uid(), title="The cover")
big_path = os.path.join(TMP, "big.bin")
big_sha = blob(big_path, 50)
big = upload(A, big_path, "application/octet-stream", "big.bin", folder=folder)
art = uid()
api(A, "POST", "/items/articles", {"id": art, "title": "with a cover", "cover": img["id"]})
t0 = time.time()
check(wait_for(lambda: asset_sha(B, img["id"]) == img_sha, 120, 1), "the image lands on b with the same id and bytes")
check(wait_for(lambda: asset_sha(B, big["id"]) == big_sha, 300, 2),
      f"the 50 MB file lands on b with the same id and bytes ({time.time() - t0:.1f} s)")
fb = file_on(B, big["id"]) or {}
check(fb.get("folder") == folder and fb.get("filename_download") == "big.bin" and str(fb.get("filesize")) == str(50 << 20),
      f"... in the same folder, with its name and size ({fb})")
ib = file_on(B, img["id"], "id,title,width,height,type") or {}
check(ib.get("title") == "The cover" and ib.get("width") == 64 and ib.get("height") == 48 and ib.get("type") == "image/png",
      f"b read the image itself: title, 64x48, image/png ({ib})")
check(wait_for(lambda: items(B, "articles", "id,cover").get(art, {}).get("cover") == img["id"], 60, 1),
      "the article's cover on b points at the image")
n_after_create = transfers()
check(n_after_create >= 2, f"the consumer transferred the bytes ({n_after_create} transfers)")

# ---- check: what files need, on both sides
r = subprocess.run([CONS, "--config", CFG, "--remote", "b", "check"], capture_output=True, text=True)
check(r.returncode == 0 and "may read files and their bytes" in r.stdout and "the largest file on a" in r.stdout,
      f"the consumer's check finds a's files readable, bytes included (exit {r.returncode})")
r = subprocess.run([P, "--config", CFG, "--instance", "a", "check"], capture_output=True, text=True)
check(r.returncode == 0 and 'system collection "directus_files"' in r.stdout
      and 'publication dxsync_a covers table "directus_files"' in r.stdout,
      f"the producer's check takes directus_files as a system collection in the publication (exit {r.returncode})")
no_files = dict(cfg, routes=[{"from": "a", "to": "b", "collections": [{"collection": "articles", "fields": ["title", "cover"]}]}])
CFG2 = os.path.join(TMP, "cfg-no-files.json")
json.dump(no_files, open(CFG2, "w"))
r = subprocess.run([CONS, "--config", CFG2, "--remote", "b", "check"], capture_output=True, text=True)
check('"articles.cover" points at "directus_files", which no route carries from a to b' in r.stdout,
      "a route with articles.cover but not directus_files gets a warning")
bad = dict(cfg, routes=[{"from": "a", "to": "b", "collections": [{"collection": "directus_files", "fields": ["title", "filesize"]}]}])
json.dump(bad, open(CFG2, "w"))
r = subprocess.run([CONS, "--config", CFG2, "--remote", "b", "check"], capture_output=True, text=True)
check(r.returncode == 2 and "routes[0].collections[0].fields[1]: \"filesize\" is set by Directus" in r.stderr,
      f"a routed field Directus sets itself is refused, naming its key ({r.stderr.strip()[:160]})")
json.dump(dict(cfg, routes=[{"from": "a", "to": "b", "collections": [{"collection": "directus_users", "fields": ["email"]}]}]),
          open(CFG2, "w"))
r = subprocess.run([CONS, "--config", CFG2, "--remote", "b", "check"], capture_output=True, text=True)
check(r.returncode == 2 and "only directus_files and directus_folders can" in r.stderr,
      "any other system collection is refused")

# ---- replace the big file's bytes on a
new_path = os.path.join(TMP, "new.txt")
new_sha = blob(new_path, 3)
upload(A, new_path, "text/plain", "replaced.txt", replace=big["id"])
check(wait_for(lambda: asset_sha(B, big["id"]) == new_sha, 120, 1), "after a replacement on a, b serves the new bytes")
fb = file_on(B, big["id"]) or {}
check(fb.get("type") == "text/plain" and str(fb.get("filesize")) == str(3 << 20) and fb.get("filename_download") == "replaced.txt",
      f"... with the new type, size and name ({fb})")

# ---- edit the title: metadata only
before = transfers()
api(A, "PATCH", f"/files/{big['id']}", {"title": "Renamed on a", "description": "edited"})
check(wait_for(lambda: (file_on(B, big["id"]) or {}).get("title") == "Renamed on a", 60, 1), "a title edited on a reaches b")
time.sleep(2)
check(transfers() == before, f"... without moving the bytes again ({transfers() - before} transfers)")
check(asset_sha(B, big["id"]) == new_sha, "... and b still serves the same bytes")

# ---- a file gone from a by the time the consumer gets to its create: skipped. (Deleted through
# Directus, its delete event would be known first and the create superseded; deleted in SQL,
# the consumer finds the source without it.)
stop("consumer-b")
gone_path = os.path.join(TMP, "gone.bin")
blob(gone_path, 1)
gone = upload(A, gone_path, "application/octet-stream", "gone.bin")
time.sleep(2)
psql(A["db"], f"delete from directus_files where id = '{gone['id']}'")
start("consumer-b", CONS, "--config", CFG, "--remote", "b", "--metrics-addr", METRICS)
check(wait_for(lambda: "event=file_gone" in log_of("consumer-b"), 60, 1),
      "a file deleted on a before the consumer got to it is skipped (event=file_gone)")
check(file_on(B, gone["id"]) is None, "... and is not on b")

# ---- delete the image: gone on b, the article's cover is null
api(A, "DELETE", f"/files/{img['id']}")
check(wait_for(lambda: file_on(B, img["id"]) is None, 60, 1), "the image deleted on a is gone on b")
check(asset_sha(B, img["id"]) is None, "... and b serves no bytes for it")
check(wait_for(lambda: items(B, "articles", "id,cover").get(art, {}).get("cover") is None, 60, 1),
      "the article's cover is null on b as on a")

# ---- Directus b dies in the middle of a 200 MB transfer
huge_path = os.path.join(TMP, "huge.bin")
huge_sha = blob(huge_path, 200)
stalled = transfers()
huge = upload(A, huge_path, "application/octet-stream", "huge.bin")
check(wait_for(lambda: started(huge["id"]), 60, 0.02), "the 200 MB transfer started")
die_mid_transfer(B, lambda: check(transfers() == stalled, "Directus b froze before the transfer finished"))
check(transfers() == stalled, "... and was killed with the transfer still cut")
check(wait_for(lambda: asset_sha(B, huge["id"]) == huge_sha, 300, 2), "after b is back, the 200 MB file lands complete")
check("event=file_transfer_failed" in log_of("consumer-b"), "the cut transfer was seen failing and started again")
letters = dead_letters()
check(not letters, f"nothing was dead-lettered ({[m['key'] for m in letters][:5]})")

# ---- Directus a (the source) dies in the middle of a transfer: an outage of the route, retried
src_path = os.path.join(TMP, "src.bin")
src_sha = blob(src_path, 100)
src = upload(A, src_path, "application/octet-stream", "src.bin")
check(wait_for(lambda: started(src["id"]), 60, 0.02), "a 100 MB transfer started")
die_mid_transfer(A)
check(wait_for(lambda: asset_sha(B, src["id"]) == src_sha, 300, 2), "after a is back, the file lands complete on b")
check("event=source_unavailable" in log_of("consumer-b"), "the consumer saw the source unavailable and retried")
letters = dead_letters()
check(not letters, f"nothing was dead-lettered ({[m['key'] for m in letters][:5]})")

# ---- metrics
check(wait_for(lambda: group_lag(CFG, "b") == 0, 120, 2), "b's consumer has applied everything")
m = urllib.request.urlopen(f"http://{METRICS}/metrics").read().decode()
def metric(name):
    return sum(float(l.split()[-1]) for l in m.splitlines() if l.startswith(name + "{") or l.startswith(name + " "))
check(metric("dxsync_consumer_file_bytes_total") >= (200 << 20), f"bytes transferred are counted ({metric('dxsync_consumer_file_bytes_total'):.0f})")
check(metric("dxsync_consumer_files_applied_total") >= 1,
      f"files applied are counted ({[l for l in m.splitlines() if 'file' in l and not l.startswith('#')][:6]})")
check(metric("dxsync_consumer_file_transfer_seconds_count") >= 1, "transfer times are observed")
# ---- a file record whose bytes never come (created without an upload): it waits, then is
# dead-lettered FILE_INCOMPLETE; once a has bytes for it, `dlq redrive` moves them
empty = uid()
api(A, "POST", "/files", {"id": empty, "type": "text/plain", "filename_download": "empty.txt",
                          "storage": "local", "title": "no bytes yet"})
check(wait_for(lambda: any("event=file_wait" in l and empty in l for l in log_of("consumer-b").splitlines()), 60, 0.5),
      "a file record without bytes waits for them (event=file_wait)")


def incomplete():
    return [m for m in dead_letters() if m["key"] == empty]


check(wait_for(incomplete, 90, 2), "after parent_wait_s it is dead-lettered")
hdrs = (incomplete() or [{}])[0].get("headers") or []
hd = dict(zip(hdrs[0::2], hdrs[1::2]))
check(hd.get("dxsync-error-code") == "FILE_INCOMPLETE" and "has not finished storing" in hd.get("dxsync-error-message", ""),
      f"... as FILE_INCOMPLETE, saying why ({hd.get('dxsync-error-message', '')[:200]})")
late_path = os.path.join(TMP, "late.bin")
late_sha = blob(late_path, 2)
stop("consumer-b")
upload(A, late_path, "application/octet-stream", "late.bin", replace=empty)
r = subprocess.run([CONS, "--config", CFG, "--remote", "b", "dlq", "redrive", "--code", "FILE_INCOMPLETE"],
                   capture_output=True, text=True, timeout=300)
check(r.returncode == 0 and " 1 applied" in r.stdout, f"dlq redrive applies the letter once a has the bytes ({r.stdout.strip()[-200:]})")
check(asset_sha(B, empty) == late_sha, "... and b serves them")
letters = [m for m in dead_letters() if m["key"] != empty]
start("consumer-b", CONS, "--config", CFG, "--remote", "b", "--metrics-addr", METRICS)
check(wait_for(lambda: group_lag(CFG, "b") == 0, 120, 2), "the consumer catches up with the replacement's events")
check(asset_sha(B, empty) == late_sha, "... and b still serves the same bytes")

# ---- verify --repair brings back a file that b lost (deleted there behind dxsync's back)
api(B, "DELETE", f"/files/{big['id']}")
check(asset_sha(B, big["id"]) is None, "a file deleted on b directly is gone there")
r = subprocess.run([CONS, "--config", CFG, "--remote", "b", "verify", "--collection", "directus_files", "--repair"],
                   capture_output=True, text=True, timeout=300)
check(r.returncode == 3 and big["id"] in r.stdout and "missing on b" in r.stdout,
      f"verify finds it missing on b (exit {r.returncode}: {r.stdout.strip()[-300:]})")
check(wait_for(lambda: asset_sha(B, big["id"]) == new_sha, 300, 2), "... and its repair brings it back, bytes included")
check(wait_for(lambda: group_lag(CFG, "b") == 0, 300, 2), "... the repair is applied")
check(asset_sha(B, huge["id"]) == huge_sha and asset_sha(B, src["id"]) == src_sha,
      "... the files b had are still the same bytes")

# ---- a row for tests/run.sh's table
def moved(fid):
    rows = [l for l in log_of("consumer-b").splitlines() if "event=file_transferred" in l and fid in l]
    kv = dict(x.split("=", 1) for x in rows[-1].split() if "=" in x) if rows else {}
    return float(kv.get("seconds", "nan")), float(kv.get("mb_per_s", "nan"))
s50, r50 = float("nan"), float("nan")  # the 50 MB file's first transfer (it was replaced since)
for l in log_of("consumer-b").splitlines():
    if "event=file_transferred" in l and "bytes=52428800" in l:
        kv = dict(x.split("=", 1) for x in l.split() if "=" in x)
        s50, r50 = float(kv["seconds"]), float(kv["mb_per_s"])
s200, r200 = moved(huge["id"])
with open(os.path.join(RUN, "files-table.txt"), "a") as f:
    f.write(f"{os.path.basename(BIN.rstrip('/')):<12} {transfers():>9} {s50:>8.2f} {r50:>8.1f} "
            f"{s200:>9.2f} {r200:>9.1f} {log_of('consumer-b').count('event=file_transfer_failed'):>7} "
            f"{len(letters):>4}\n")
finish(NAME)
