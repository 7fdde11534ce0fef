#!/usr/bin/env python3
"""Checks deploy/grafana/dxsync.json (and optionally the alert rules) against what the programs
export: the JSON parses, the data source is a variable used by every panel and query, there is a
row per program, every query and rule names only exported metrics (histograms by their _bucket,
_sum and _count series; `up` is Prometheus's own), and every exported metric appears in some
panel.

usage: dashboard.py DASHBOARD (METRICS_FILE... | --source DIR) [--rules RULES_YML]
METRICS_FILE: a live /metrics answer; --source DIR: the metric names registered in DIR's C code.
"""
import json
import os
import re
import sys

BUILTIN = {"up"}  # series Prometheus makes itself
NAME = re.compile(r"\b((?:dxsync|process)_[a-z0-9_]+|up)\b(?!\s*\()")


def exported_from_metrics(paths):
    names, hist = set(), set()
    for p in paths:
        for line in open(p, encoding="utf-8"):
            m = re.match(r"# TYPE (\S+) (\S+)", line)
            if m:
                names.add(m.group(1))
                if m.group(2) == "histogram":
                    hist.add(m.group(1))
    return names, hist


def exported_from_source(root):
    names, hist = set(), set()
    call = re.compile(r"metrics_(counter|gauge|histogram)\(\s*[^,]+,\s*(\"(?:dxsync|process)_[a-z0-9_]+\"|[A-Z_]+)", re.S)
    for d, _, files in os.walk(root):
        if "/tests" in d or "/build" in d or "/." in d:
            continue
        for f in files:
            if not f.endswith(".c"):
                continue
            text = open(os.path.join(d, f), encoding="utf-8").read()
            macros = dict(re.findall(r"#define\s+([A-Z_]+)\s+\"(dxsync_[a-z0-9_]+)\"", text))
            for kind, name in call.findall(text):
                name = macros.get(name, name.strip('"'))
                if not name.startswith(("dxsync_", "process_")):
                    continue
                names.add(name)
                if kind == "histogram":
                    hist.add(name)
    return names, hist


def family(name, hist):
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and name[: -len(suffix)] in hist:
            return name[: -len(suffix)]
    return name


def exprs_of_rules(path):
    """The expr of each rule (a small reader: no YAML library needed)."""
    out, cur = [], None
    for line in open(path, encoding="utf-8"):
        m = re.match(r"\s*-?\s*expr:\s*(\|-?|>-?)?\s*(.*)$", line)
        if m:
            if cur is not None:
                out.append(cur)
            cur = m.group(2)
            indent = None
            continue
        if cur is not None:
            if re.match(r"\s*(-\s*)?[a-z_]+:", line) or not line.strip():
                out.append(cur)
                cur = None
            else:
                cur += " " + line.strip()
    if cur is not None:
        out.append(cur)
    return out


def main(argv):
    args = argv[1:]
    rules = None
    if "--rules" in args:
        i = args.index("--rules")
        rules = args[i + 1]
        del args[i : i + 2]
    dash_path = args.pop(0)
    if args and args[0] == "--source":
        exported, hist = exported_from_source(args[1])
    else:
        exported, hist = exported_from_metrics(args)
    problems = []
    if not exported:
        problems.append("no exported metric found")
    dash = json.load(open(dash_path, encoding="utf-8"))

    variables = {v.get("name"): v for v in dash.get("templating", {}).get("list", [])}
    ds_vars = [n for n, v in variables.items() if v.get("type") == "datasource" and v.get("query") == "prometheus"]
    if not ds_vars:
        problems.append("no Prometheus data source variable in templating")
    ds_ref = "${%s}" % (ds_vars[0] if ds_vars else "DS_PROMETHEUS")

    rows, used, ids = [], set(), set()
    panels = list(dash.get("panels", []))
    for p in list(panels):
        panels.extend(p.get("panels", []))
    for p in panels:
        if p.get("id") in ids:
            problems.append("panel id %s twice" % p.get("id"))
        ids.add(p.get("id"))
        if "gridPos" not in p:
            problems.append("panel %r has no gridPos" % p.get("title"))
        if p.get("type") == "row":
            rows.append(p.get("title", ""))
            continue
        if (p.get("datasource") or {}).get("uid") != ds_ref:
            problems.append("panel %r does not use the data source variable %s" % (p.get("title"), ds_ref))
        if not p.get("targets"):
            problems.append("panel %r has no query" % p.get("title"))
        for t in p.get("targets", []):
            if (t.get("datasource") or {}).get("uid") != ds_ref:
                problems.append("a query of %r does not use %s" % (p.get("title"), ds_ref))
            expr = t.get("expr", "")
            names = set(NAME.findall(expr))
            if not names:
                problems.append("query of %r names no metric: %s" % (p.get("title"), expr))
            for n in names:
                f = family(n, hist)
                if f not in exported and f not in BUILTIN:
                    problems.append("panel %r queries %s, which no program exports" % (p.get("title"), n))
                used.add(f)
    for want in ("Producer", "Consumer", "Notifier"):
        if want not in rows:
            problems.append("no row %r (rows: %s)" % (want, rows))
    for n in sorted(exported - used):
        problems.append("%s is exported but no panel shows it" % n)

    if rules:
        exprs = exprs_of_rules(rules)
        if not exprs:
            problems.append("no rule expression in %s" % rules)
        for e in exprs:
            for n in set(NAME.findall(e)):
                f = family(n, hist)
                if f not in exported and f not in BUILTIN:
                    problems.append("rule queries %s, which no program exports: %s" % (n, e))

    for p in problems:
        print("FAIL " + p)
    print("%d panels, %d metrics exported, %d problems" % (len(panels), len(exported), len(problems)))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
