#!/usr/bin/env python3
"""Writes the fuzz seed corpora: pgoutput streams from the recorded fixtures (each message with
a two-byte big-endian length, as fuzz_pgoutput reads them) and a few configuration files."""
import glob, json, os
here = os.path.dirname(os.path.abspath(__file__))
fixtures = os.path.join(here, "..", "..", "fixtures", "pgoutput")
os.makedirs(os.path.join(here, "pgoutput"), exist_ok=True)
for path in sorted(glob.glob(os.path.join(fixtures, "*.hex"))):
    msgs = [bytes.fromhex(l.split()[1]) for l in open(path) if l.strip() and not l.startswith("#")]
    out = b"".join(len(m).to_bytes(2, "big") + m for m in msgs)
    name = os.path.basename(path)[:-4]
    open(os.path.join(here, "pgoutput", name + ".bin"), "wb").write(out)
os.makedirs(os.path.join(here, "config"), exist_ok=True)
base = {"kafka": {"brokers": "127.0.0.1:9092", "topic_prefix": "dxsync", "partitions": 6,
                  "replication_factor": -1, "retention_ms": -1,
                  "properties": {"security.protocol": "plaintext", "linger.ms": 5}},
        "instances": [{"name": "a", "url": "http://127.0.0.1:8055", "token": "${DXSYNC_FUZZ_TOKEN}",
                       "database": "postgresql://postgres@127.0.0.1:5432/directus_a"},
                      {"name": "b", "url": "https://b.example.com/", "token": "t",
                       "sync_user": "e1e260ff-05b0-4648-aef0-a8adaf64428d"}],
        "routes": [{"from": "a", "to": "b", "collections": [{"collection": "articles", "fields": ["title", "body"]}],
                    "notify": ["e1e260ff-05b0-4648-aef0-a8adaf64428d"]}],
        "consumer": {"batch_max": 100, "linger_ms": 0, "request_timeout_ms": 30000,
                     "retry_notify_after_s": 60, "item_attempts": 5, "max_in_flight": 4},
        "notify": {"digest_window_s": 60}}
open(os.path.join(here, "config", "design.json"), "w").write(json.dumps(base, indent=2))
minimal = {"kafka": {"brokers": "k:1"}, "instances": [{"name": "a", "url": "http://x", "token": "t"}], "routes": []}
open(os.path.join(here, "config", "minimal.json"), "w").write(json.dumps(minimal))
bad = dict(base); bad["routes"] = [{"from": "a", "to": "a", "collections": []}]
open(os.path.join(here, "config", "bad-route.json"), "w").write(json.dumps(bad))
