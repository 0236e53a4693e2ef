#!/usr/bin/env python3
"""Idle cost on one API server, for applier/bench/many-agents.sh (standard library only).

  wait-ready KUBECONFIG GROUP N TIMEOUT  wait until N Kustomizations of API group GROUP (in all
                                         namespaces) have a lastAppliedRevision and are not
                                         Ready=False
  snap KUBECONFIG OUT ROLE=PIDFILE... [--ferry-ports FILE] [--flux-metrics URL]
                                         one snapshot as JSON: the kube-apiserver's
                                         apiserver_request_total, open watches (longrunning WATCH
                                         requests, registered watchers), each process's CPU ticks
                                         and memory, and the reconciles counted so far (each
                                         agent's /metrics on the ports in FILE, or Flux's)
  report [--tenants N] WINDOW_LABEL INTERVAL_S BASE_A BASE_B [SYSTEM A B]...
                                         the comparison as Markdown (stdout); BASE_A/B is the
                                         window with the control plane alone, subtracted from
                                         each system's request rates

CPU is utime+stime from /proc/PID/stat (it includes threads that have exited, which tokio's
blocking pool and Go's runtime both have); memory is VmRSS (which counts the binary's mapped
file pages in every process) and RssAnon (the process's own memory) from /proc/PID/status.
"""

import json
import os
import re
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from helper import get_json, kube, urlopen  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)')
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def samples(text, names):
    """(name, labels, value) for the samples of the metrics in NAMES."""
    for line in text.splitlines():
        if not line or line[0] == "#":
            continue
        m = SAMPLE.match(line)
        if m and m.group(1) in names:
            yield m.group(1), dict(LABEL.findall(m.group(2) or "")), float(m.group(3))


def wait_ready(kubeconfig, group, n, timeout):
    server, headers = kube(kubeconfig)
    deadline = time.monotonic() + timeout
    ready = 0
    while time.monotonic() < deadline:
        items = get_json(f"{server}/apis/{group}/v1/kustomizations", headers, timeout=60).get("items") or []
        ready = 0
        for ks in items:
            st = ks.get("status") or {}
            cond = [c for c in st.get("conditions") or [] if c.get("type") == "Ready"]
            # Flux sets Ready=Unknown for the length of every reconcile, so with hundreds of
            # Kustomizations some are always "in progress": applied once and not failed counts.
            if st.get("lastAppliedRevision") and cond and cond[0].get("status") != "False":
                ready += 1
        if ready >= n:
            print(ready)
            return 0
        time.sleep(2)
    print(f"{ready} of {n} {group} Kustomizations Ready after {timeout}s", file=sys.stderr)
    return 1


def proc(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    out = {"pid": pid, "ticks": int(fields[11]) + int(fields[12])}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "RssAnon", "VmHWM"):
                out[k] = int(v.split()[0])
    return out


def apiserver(kubeconfig):
    server, headers = kube(kubeconfig)
    req = urllib.request.Request(server + "/metrics", headers={**headers, "Accept": "text/plain"})
    with urlopen(req, timeout=60) as r:
        text = r.read().decode()
    requests, watches, watchers = {}, {}, {}
    names = {"apiserver_request_total", "apiserver_longrunning_requests",
             "apiserver_registered_watchers"}
    for name, lb, v in samples(text, names):
        res = lb.get("resource", "")
        if lb.get("group"):
            res += "." + lb["group"]
        if lb.get("subresource"):
            res += "/" + lb["subresource"]
        if name == "apiserver_request_total":
            key = f"{lb.get('verb')} {res or '(non-resource)'}"
            if lb.get("dry_run"):
                key += " (dry-run)"
            requests[key] = requests.get(key, 0) + v
        elif name == "apiserver_longrunning_requests" and lb.get("verb") == "WATCH":
            watches[res] = watches.get(res, 0) + v
        elif name == "apiserver_registered_watchers":
            kind = lb.get("kind") or lb.get("resource") or "?"
            watchers[kind] = watchers.get(kind, 0) + v
    return requests, watches, watchers


def reconciles(ports_file, flux_url):
    total = 0.0
    if ports_file:
        for port in open(ports_file).read().split():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
                    text = r.read().decode()
            except OSError:
                continue
            total += sum(v for _, _, v in samples(text, {"ferry_applier_reconciles_total"}))
    if flux_url:
        with urllib.request.urlopen(flux_url, timeout=10) as r:
            text = r.read().decode()
        total += sum(v for _, lb, v in samples(text, {"controller_runtime_reconcile_total"})
                     if lb.get("controller") == "kustomization")
    return total


def snap(kubeconfig, out, args):
    ports_file = flux_url = None
    roles = {}
    it = iter(args)
    for a in it:
        if a == "--ferry-ports":
            ports_file = next(it)
        elif a == "--flux-metrics":
            flux_url = next(it)
        else:
            role, _, pidfile = a.partition("=")
            roles[role] = [int(p) for p in open(pidfile).read().split()]
    t = time.time()
    requests, watches, watchers = apiserver(kubeconfig)
    procs = {role: [proc(p) for p in pids] for role, pids in roles.items()}
    rec = reconciles(ports_file, flux_url)
    with open(out, "w") as f:
        json.dump({"t": t, "requests": requests, "watches": watches, "watchers": watchers,
                   "procs": procs, "reconciles": rec}, f)


def mib(kib):
    return f"{kib / 1024:.1f}"


def procs_over(a, b, dt):
    """Per role: CPU seconds per hour over the window, VmRSS and RssAnon at its end (KiB)."""
    out = {}
    for role, ps in b["procs"].items():
        before = {p["pid"]: p for p in a["procs"].get(role, [])}
        out[role] = {
            "n": len(ps),
            "cpu_s_per_h": [(p["ticks"] - before[p["pid"]]["ticks"]) / TICK * 3600 / dt
                            for p in ps if p["pid"] in before],
            "rss": [p.get("VmRSS", 0) for p in ps],
            "anon": [p.get("RssAnon", 0) for p in ps],
        }
    return out


def report(window_label, interval_s, base_a, base_b, systems, tenants=None):
    load = lambda p: json.load(open(p))  # noqa: E731
    ba, bb = load(base_a), load(base_b)
    bdt = bb["t"] - ba["t"]
    base_rate = {k: (bb["requests"].get(k, 0) - ba["requests"].get(k, 0)) / bdt for k in bb["requests"]}
    base = "control plane alone"
    rows = {base: {"dt": bdt, "rate": {}, "procs": procs_over(ba, bb, bdt), "watches": {},
                   "watchers": {}, "reconciles": 0}}
    for name, a, b in systems:
        a, b = load(a), load(b)
        dt = b["t"] - a["t"]
        rate = {k: (b["requests"].get(k, 0) - a["requests"].get(k, 0)) / dt - base_rate.get(k, 0)
                for k in b["requests"]}
        rate = {k: v for k, v in rate.items() if abs(v) * dt >= 0.5}
        watches = {k: b["watches"].get(k, 0) - bb["watches"].get(k, 0)
                   for k in set(b["watches"]) | set(bb["watches"])}
        rows[name] = {"dt": dt, "rate": rate, "procs": procs_over(a, b, dt),
                      "watches": {k: v for k, v in watches.items() if v},
                      "watchers": b["watchers"], "reconciles": b["reconciles"] - a["reconciles"]}
    names = [s[0] for s in systems]
    out = []
    w = out.append
    w(f"Window: {window_label} per system at idle (after every Kustomization was Ready and one "
      f"more interval passed); Kustomization interval {interval_s:.0f} s. Requests and watches "
      f"are net of the control plane alone ({bdt:.0f} s baseline window: "
      f"{sum(base_rate.values()):.2f} req/s, {sum(bb['watches'].values()):.0f} open watches).\n")
    w("| measure | " + " | ".join(names) + " |")
    w("|---|" + "---|" * len(names))

    def row(label, f, cols=names):
        w(f"| {label} | " + " | ".join(f(rows[n]) for n in cols) + " |")

    def stat(role, key, fmt):
        def f(r):
            p = r["procs"].get(role)
            if not p or not p[key]:
                return "–"
            v = sorted(p[key])
            return fmt(sum(v) / len(v), v[len(v) // 2], v[-1], sum(v))
        return f

    total_rate = lambda r: sum(r["rate"].values())  # noqa: E731
    row("API requests/s at idle", lambda r: f"{total_rate(r):.2f}")
    row("  per reconcile interval (all tenants)", lambda r: f"{total_rate(r) * interval_s:.0f}")
    if tenants:
        row("  per tenant per interval", lambda r: f"{total_rate(r) * interval_s / tenants:.1f}")
    row("  Kustomization reconciles in the window", lambda r: f"{r['reconciles']:.0f}")
    row("  requests per reconcile", lambda r: f"{total_rate(r) * r['dt'] / r['reconciles']:.1f}"
        if r["reconciles"] else "–")
    row("open watches (longrunning WATCH requests)", lambda r: f"{sum(r['watches'].values()):.0f}")
    if any(rows[n]["watchers"] for n in names):
        row("registered watchers", lambda r: f"{sum(r['watchers'].values()):.0f}")
    for role, label in (("agents", "agent"), ("source-server", "ferry-source-server"),
                        ("flux-kc", "kustomize-controller"), ("flux-sc", "source-controller")):
        if not any(role in rows[n]["procs"] for n in names):
            continue
        row(f"{label}: processes", lambda r, role=role: str(r["procs"].get(role, {}).get("n", "–")))
        row(f"{label}: VmRSS MiB (mean / max / sum)",
            stat(role, "rss", lambda m, md, mx, s: f"{mib(m)} / {mib(mx)} / {mib(s)}"))
        row(f"{label}: RssAnon MiB (mean / max / sum)",
            stat(role, "anon", lambda m, md, mx, s: f"{mib(m)} / {mib(mx)} / {mib(s)}"))
        row(f"{label}: CPU s per idle hour (mean / max / sum)",
            stat(role, "cpu_s_per_h", lambda m, md, mx, s: f"{m:.1f} / {mx:.1f} / {s:.1f}"))
    w(f"\n| process (whole process; the same apiserver, one system after the other) | {base} | "
      + " | ".join(names) + " |")
    w("|---|---|" + "---|" * len(names))
    for role, label in (("apiserver", "kube-apiserver"), ("etcd", "etcd"),
                        ("kcm", "kube-controller-manager")):
        row(f"{label}: VmRSS MiB", stat(role, "rss", lambda m, md, mx, s: mib(s)), [base] + names)
        row(f"{label}: RssAnon MiB", stat(role, "anon", lambda m, md, mx, s: mib(s)), [base] + names)
        row(f"{label}: CPU s per idle hour", stat(role, "cpu_s_per_h", lambda m, md, mx, s: f"{s:.0f}"),
            [base] + names)
    for n in names:
        r = rows[n]
        w(f"\n{n}: requests by verb and resource (net of the baseline; the top 10):\n")
        w("| verb resource | req/s | per interval |")
        w("|---|---|---|")
        for k, v in sorted(r["rate"].items(), key=lambda kv: -abs(kv[1]))[:10]:
            w(f"| {k} | {v:.3f} | {v * interval_s:.1f} |")
        w(f"\n{n}: open watches by resource (net): " + ", ".join(
            f"{k or '?'} {v:.0f}" for k, v in sorted(r["watches"].items(), key=lambda kv: -kv[1])))
    print("\n".join(out))


def main(argv):
    cmd, args = argv[1], argv[2:]
    if cmd == "wait-ready":
        return wait_ready(args[0], args[1], int(args[2]), float(args[3]))
    if cmd == "snap":
        snap(args[0], args[1], args[2:])
        return 0
    if cmd == "report":
        tenants = None
        if args[0] == "--tenants":
            tenants, args = int(args[1]), args[2:]
        systems = [tuple(args[i:i + 3]) for i in range(4, len(args), 3)]
        report(args[0], float(args[1]), args[2], args[3], systems, tenants)
        return 0
    print(f"unknown command {cmd}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
