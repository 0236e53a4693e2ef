#!/usr/bin/env python3
"""Chart conformance: what the agent applies for a chart vs `helm template` (standard library only).

  helm_conformance.py [--values-ci] DIR...
  helm_conformance.py --expected CHART [VALUES...]   helm's objects, for a test fixture

Every chart below each DIR (a directory with Chart.yaml that is not a vendored subchart of
another) is rendered twice with `helm template` (the oracle) and once with
`ferry-applier helm-template` (the agent's own path: artifact checks, helm under limits, hooks
split out, tenancy, labels). The oracle's YAML is turned into JSON by `kubectl label --local`,
i.e. by the same decoder (sigs.k8s.io/yaml) helm's install path uses, so a YAML 1.1 `yes` or
`0644` means what it means to helm. Ferry's own additions are removed before comparing (owner
labels apply.ferry.dev/*, Helm's meta.helm.sh/release-* annotations which `helm install` sets
too, the ferry.dev/ssa annotation of CRDs under `Create`, metadata.namespace where the chart
left it empty, `creationTimestamp: null`, which the API server drops). Values that differ
between two oracle runs (randAlphaNum, generated certificates; for a chart that differs, the
second run is repeated a second later for values made of `now`) are compared only by type. Objects are compared per part (CRDs, hooks, objects,
cluster-scoped) in order. Dependencies: present in charts/ (directory or .tgz), else copied from
a `file://` path, else from a chart of the same name found below the same DIR; otherwise the
chart is skipped with the reason. Prints one line per chart and a summary line; exit 1 when a
chart differs or fails.

Environment: FERRY_HELM, FERRY_KUBECTL (default helm/kubectl on PATH), FERRY_APPLIER
(default target/debug/ferry-applier).
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HELM = os.environ.get("FERRY_HELM", "helm")
KUBECTL = os.environ.get("FERRY_KUBECTL", "kubectl")
APPLIER = os.environ.get("FERRY_APPLIER", "target/debug/ferry-applier")
NAMESPACE = "conformance"
RELEASE = "conf"
KUBE_VERSION = "v1.35.2"
PROBE = "ferry.dev/conformance-probe"
FERRY_LABELS = ("apply.ferry.dev/name", "apply.ferry.dev/namespace")
RELEASE_ANNOTATIONS = ("meta.helm.sh/release-name", "meta.helm.sh/release-namespace")
TIMEOUT = 120


def run(cmd, cwd=None):
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT, cwd=cwd)
    return p.returncode, p.stdout, p.stderr


def find_charts(root):
    """Chart directories below root that are not inside another chart."""
    out = []
    for d, dirs, files in os.walk(root):
        dirs.sort()
        if "Chart.yaml" in files:
            out.append(d)
            dirs[:] = []  # a chart's charts/ holds its vendored subcharts
    return out


def index_by_name(charts):
    by_name = {}
    for c in charts:
        code, out, _ = run([HELM, "show", "chart", c])
        if code == 0:
            for line in out.splitlines():
                if line.startswith("name:"):
                    by_name.setdefault(line.split(":", 1)[1].strip(), c)
    return by_name


def dependencies(chart):
    """(name, repository, status) rows of `helm dependency list`."""
    code, out, err = run([HELM, "dependency", "list", chart])
    if code != 0:
        return None, err.strip()
    rows = []
    for line in out.splitlines()[1:]:
        cols = [c.strip() for c in line.split("\t")]
        if len(cols) >= 4 and cols[0]:
            rows.append((cols[0], cols[2], cols[3]))
    return rows, ""


def vendor(chart, by_name, depth=0):
    """Copies missing dependencies into chart/charts; returns a skip reason or None."""
    rows, err = dependencies(chart)
    if rows is None:
        return "helm dependency list: " + err
    for name, repo, status in rows:
        if status in ("ok", "unpacked"):
            continue
        src = None
        if repo.startswith("file://"):
            src = os.path.normpath(os.path.join(chart, repo[len("file://"):]))
        elif name in by_name:
            src = by_name[name]
        if not src or not os.path.isfile(os.path.join(src, "Chart.yaml")) or depth > 5:
            return f"dependency {name} ({repo}) is not vendored and not in the corpus"
        dest = os.path.join(chart, "charts", name)
        shutil.copytree(src, dest, symlinks=False, dirs_exist_ok=True)
        why = vendor(dest, by_name, depth + 1)
        if why:
            return why
    return None


def decode(yaml_text, workdir):
    """helm's YAML as JSON objects, decoded by kubectl (sigs.k8s.io/yaml, as helm install)."""
    path = os.path.join(workdir, "in.yaml")
    with open(path, "w") as f:
        f.write(yaml_text)
    code, out, err = run([KUBECTL, "label", "--local", "-f", path, "-o", "json",
                          PROBE + "-", "--kubeconfig=/dev/null"])
    if code != 0 and "no objects passed" in err:
        return []
    if code != 0:
        raise RuntimeError("kubectl could not decode helm's output: " + err.strip()[:300])
    objs, dec, i = [], json.JSONDecoder(), 0
    while True:
        while i < len(out) and out[i].isspace():
            i += 1
        if i >= len(out):
            break
        o, i = dec.raw_decode(out, i)
        objs.extend(o["items"] if o.get("kind") == "List" and "items" in o else [o])
    return [drop_empty_meta(o) for o in objs]


def drop_empty_meta(o):
    md = o.get("metadata") or {}
    if "creationTimestamp" in md and md["creationTimestamp"] is None:
        del md["creationTimestamp"]  # the API server drops it; Ferry's typed metadata does too
    for k in ("labels", "annotations"):
        if k in md and not md[k]:
            del md[k]
    return o


def strip_ferry(o, part, oracle):
    md = o.get("metadata") or {}
    for k in FERRY_LABELS:
        (md.get("labels") or {}).pop(k, None)
    keep = (oracle.get("metadata") or {}).get("annotations") or {}
    for k in RELEASE_ANNOTATIONS + ("ferry.dev/ssa",):
        if k not in keep:
            (md.get("annotations") or {}).pop(k, None)
    if md.get("namespace") == NAMESPACE and "namespace" not in (oracle.get("metadata") or {}):
        del md["namespace"]
    return drop_empty_meta(o)


def differences(a, b, random, path="", out=None):
    """Paths where a (oracle) and b (ferry) differ; random: paths that vary between renders."""
    out = [] if out is None else out
    if path in random:
        if type(a) is not type(b):
            out.append(path)
    elif isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                side = "only ferry" if k not in a else "only helm"
                out.append(f"{path}/{k} ({side} {json.dumps(b.get(k, a.get(k)))[:60]})")
            else:
                differences(a[k], b[k], random, f"{path}/{k}", out)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            differences(x, y, random, f"{path}/{i}", out)
    elif a != b or type(a) is not type(b):
        out.append(f"{path} (helm {json.dumps(a)[:60]} vs ferry {json.dumps(b)[:60]})")
    return out


def varying(a, b, path="", out=None):
    """Paths where two oracle renders differ."""
    out = set() if out is None else out
    if isinstance(a, dict) and isinstance(b, dict):
        for k in set(a) & set(b):
            varying(a[k], b[k], f"{path}/{k}", out)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            varying(x, y, f"{path}/{i}", out)
    elif a != b:
        out.add(path)
    return out


def describe(o):
    md = o.get("metadata") or {}
    return f"{o.get('kind')}/{md.get('name')}"


def oracle_parts(a_text, b_text, c_text, workdir, cluster):
    """helm's objects by part ({part: [(render 1, render 2)]}) and their count; None parts
    when the two renders have different numbers of objects."""
    a, b, c = decode(a_text, workdir), decode(b_text, workdir), decode(c_text, workdir)
    if len(a) != len(b):
        return None, len(a)

    def part(o):
        if (o.get("apiVersion"), o.get("kind")) in cluster:
            return "cluster-scoped"
        ann = (o.get("metadata") or {}).get("annotations") or {}
        return "hook" if "helm.sh/hook" in ann else "object"

    # --include-crds prints the crds/ files first.
    parts = {"crd": [(o, o) for o in c[: len(c) - len(a)]]}
    for x, y in zip(a, b):
        parts.setdefault(part(x), []).append((x, y))
    return parts, len(a)


def expected(chart, values):
    """helm template's objects for a test fixture: [{"part", "object"}] as JSON."""
    base = [HELM, "template", RELEASE, chart, "--namespace", NAMESPACE,
            "--kube-version", KUBE_VERSION] + sum((["-f", v] for v in values), [])
    with tempfile.TemporaryDirectory(prefix="ferry-conf-") as tmp:
        texts = []
        for extra in ([], [], ["--include-crds"]):
            code, out, err = run(base + extra)
            if code != 0:
                raise RuntimeError(err)
            texts.append(out)
        parts, _ = oracle_parts(*texts, tmp, set())
    out = [{"part": p, "object": x} for p in ("crd", "hook", "object") for x, _ in parts.get(p, [])]
    return json.dumps(out, indent=1, sort_keys=True) + "\n"


def check(chart, values, workdir, again=False):
    """('identical'|'differs'|'fails'|'refused'|'skipped', detail, object count)."""
    base = [HELM, "template", RELEASE, chart, "--namespace", NAMESPACE,
            "--kube-version", KUBE_VERSION] + sum((["-f", v] for v in values), [])
    code, a_text, err = run(base)
    if code != 0:
        lines = [l for l in err.strip().splitlines() if not l.startswith("Use --debug")]
        e = lines[-1] if lines else f"exit {code}"
        if "missing in charts/ directory" in e or "library charts are not installable" in e:
            return "skipped", e[:200], 0
        return "skipped", "helm template itself fails: " + e[:200], 0
    code, f_out, f_err = run([APPLIER, "helm-template", RELEASE, chart, "--namespace", NAMESPACE,
                              "--kube-version", KUBE_VERSION, "--helm-binary", HELM]
                             + sum((["--values", v] for v in values), []))
    if again:
        # Values made of the time (`now`) vary only when the clock has moved on.
        time.sleep(1.1)
    _, b_text, _ = run(base)
    _, c_text, _ = run(base + ["--include-crds"])
    if code != 0 and "refused for namespace" in f_err:
        # The agent's tenancy (objects in other namespaces), not a rendering difference.
        return "refused", f_err.strip()[-300:], 0
    if code != 0:
        return "fails", f_err.strip()[-300:], 0
    ferry = [json.loads(line) for line in f_out.splitlines() if line.strip()]
    cluster = {(o["object"].get("apiVersion"), o["object"].get("kind"))
               for o in ferry if o["part"] == "cluster-scoped"}
    parts, count = oracle_parts(a_text, b_text, c_text, workdir, cluster)
    if parts is None:
        return "differs", "helm renders a different number of objects each time", count
    got = {}
    for o in ferry:
        got.setdefault(o["part"], []).append(o["object"])
    for name in ("crd", "hook", "object", "cluster-scoped"):
        want, have = parts.get(name, []), got.get(name, [])
        if len(want) != len(have):
            w = sorted(describe(x) for x, _ in want)
            h = sorted(describe(strip_ferry(y, name, {})) for y in have)
            return "differs", f"{name}s: helm {len(want)} vs ferry {len(have)} " \
                f"(only helm: {sorted(set(w) - set(h))[:3]}, only ferry: {sorted(set(h) - set(w))[:3]})", count
        diffs = []
        for (x, y), f in zip(want, have):
            f = strip_ferry(f, name, x)
            diffs += [f"{name} {describe(x)}: {d}" for d in differences(x, f, varying(x, y))]
        if diffs:
            if not again:
                return check(chart, values, workdir, again=True)
            return "differs", "; ".join(diffs), count
    return "identical", "", sum(len(p) for p in parts.values())


def main(argv):
    if argv[:1] == ["--expected"]:
        sys.stdout.write(expected(argv[1], argv[2:]))
        return 0
    with_ci = "--values-ci" in argv
    dirs = [a for a in argv if not a.startswith("--")]
    if not dirs:
        print(__doc__, file=sys.stderr)
        return 2
    counts = {}
    objects = 0
    for root in dirs:
        charts = find_charts(root)
        by_name = index_by_name(charts)
        for chart in charts:
            with tempfile.TemporaryDirectory(prefix="ferry-conf-") as tmp:
                work = os.path.join(tmp, "chart")
                shutil.copytree(chart, work, symlinks=False)
                why = vendor(work, by_name)
                cases = [[]]
                ci = os.path.join(work, "ci")
                if with_ci and os.path.isdir(ci):
                    cases += [[os.path.join(ci, f)] for f in sorted(os.listdir(ci))
                              if f.endswith((".yaml", ".yml"))]
                for values in cases:
                    label = chart + (f" -f {os.path.relpath(values[0], work)}" if values else "")
                    if why:
                        result, detail, n = "skipped", why, 0
                    else:
                        try:
                            result, detail, n = check(work, values, tmp)
                        except (RuntimeError, subprocess.TimeoutExpired) as e:
                            result, detail, n = "fails", str(e), 0
                    counts[result] = counts.get(result, 0) + 1
                    objects += n
                    print(f"{result:9} {label}" + (f": {detail}" if detail else ""), flush=True)
    total = sum(counts.values())
    print(f"summary: {total} renders, {counts.get('identical', 0)} identical, "
          f"{counts.get('differs', 0)} differ, {counts.get('fails', 0)} fail, "
          f"{counts.get('refused', 0)} refused by tenancy, "
          f"{counts.get('skipped', 0)} skipped; {objects} objects compared")
    return 1 if counts.get("differs") or counts.get("fails") else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
