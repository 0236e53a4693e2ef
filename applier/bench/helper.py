#!/usr/bin/env python3
"""Helpers for applier/bench/run.sh (standard library only).

  gen DIR N_CONFIGMAPS N_DEPLOYMENTS [CHANGE]
                                         write the benchmark manifests + kustomization.yaml
  free-port                              print a free loopback TCP port
  wait-artifact URL NS NAME TIMEOUT      wait until the source server has an artifact; print revision
  create-ready KUBECONFIG NS NAME SOURCE INTERVAL TIMEOUT [SOURCE_NS]
                                         create the Kustomization with one POST, watch it until
                                         Ready=True; print start-ns, ready-ns and revision
  wait-settled KUBECONFIG NS TIMEOUT     wait until every Deployment in NS has its status (and,
                                         on a real control plane, every ReplicaSet its Pods)
  flow KUBECONFIG TRIGGER KS_PATH REV TIMEOUT
                                         trigger a source (ferry:URL or flux:PATH), watch the
                                         Kustomization at KS_PATH until Ready at REV; print
                                         start-ns ready-ns
  git-http ROOT PORT_FILE                serve ROOT's repositories by Git smart HTTP on loopback
  kube-pem KUBECONFIG DIR                write the kubeconfig's CA/client PEMs; print the server
  count-objects KUBECONFIG NS            ConfigMaps + Deployments in NS
  proc PID                               cpu_ticks cpu_ns rss_kib hwm_kib of a process
  reconcile-seconds METRICS_URL          sum and count of the agent's reconcile durations
  phases AGENT_LOG START_NS               ms until the agent logged "fetched artifact" / "applied"
  wait-lines FILE PATTERN N TIMEOUT      wait until FILE has >= N lines containing PATTERN

Waiting talks to the API server directly (urllib), not through kubectl, so the waiting itself
costs no process start-ups on a busy machine and nothing at all in the agent.
"""

import json
import os
import re
import socket
import sys
import time
import urllib.error
import urllib.request


def gen(root, n_cm, n_dep, change=None):
    """CHANGE, if given, is written into an annotation of every object (a commit that changes
    all of them without rolling out the Deployments)."""
    apps = os.path.join(root, "apps")
    os.makedirs(apps, exist_ok=True)
    ann = f"  annotations:\n    bench.ferry.dev/change: \"{change}\"\n" if change is not None else ""
    resources = []
    for i in range(n_cm):
        name = f"cm-{i:04d}"
        data = "\n".join(f"  key{k}: value-{i}-{k}-{'x' * 24}" for k in range(8))
        with open(os.path.join(apps, f"{name}.yaml"), "w") as f:
            f.write(
                f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n{ann}"
                f"  labels:\n    app.kubernetes.io/part-of: bench\n    shard: s{i % 10}\n"
                f"data:\n{data}\n"
            )
        resources.append(f"{name}.yaml")
    for i in range(n_dep):
        name = f"app-{i:04d}"
        with open(os.path.join(apps, f"{name}.yaml"), "w") as f:
            f.write(
                f"""apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
{ann}  labels:
    app: {name}
    app.kubernetes.io/part-of: bench
spec:
  replicas: 2
  selector:
    matchLabels:
      app: {name}
  template:
    metadata:
      labels:
        app: {name}
    spec:
      containers:
      - name: main
        image: my-registry/{name}:v1.0.{i % 7}
        args: ["--port=8080", "--log-level=info"]
        ports:
        - containerPort: 8080
          name: http
        env:
        - name: APP_NAME
          value: {name}
        - name: SHARD
          value: s{i % 10}
        resources:
          requests:
            cpu: 10m
            memory: 32Mi
          limits:
            memory: 64Mi
        readinessProbe:
          httpGet:
            path: /healthz
            port: http
"""
            )
        resources.append(f"{name}.yaml")
    with open(os.path.join(apps, "kustomization.yaml"), "w") as f:
        f.write("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n")
        f.writelines(f"- {r}\n" for r in resources)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        print(s.getsockname()[1])


def kube(kubeconfig):
    """(server URL, headers) from a kubeconfig: the test server's (bearer token) or
    tests/scripts/real-cluster.sh's (CA and client certificate data, see `tls`)."""
    text = open(kubeconfig).read()
    server = re.search(r"server:\s*(\S+)", text).group(1).strip("'\"")
    token = re.search(r"token:\s*(\S+)", text)
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = "Bearer " + token.group(1).strip("'\"")
    _TLS.setdefault(server, _tls_context(text))
    return server, headers


# One TLS context per API server URL (None for plain HTTP), used by every request to it.
_TLS = {}


def _tls_context(text):
    """The kubeconfig's CA and client certificate as an SSL context (ssl needs files)."""
    import base64
    import ssl
    import tempfile

    pems = {}
    for field in ("certificate-authority-data", "client-certificate-data", "client-key-data"):
        m = re.search(field + r":\s*(\S+)", text)
        if m:
            pems[field] = base64.b64decode(m.group(1))
    if "certificate-authority-data" not in pems:
        return None
    ctx = ssl.create_default_context(cadata=pems["certificate-authority-data"].decode())
    if "client-certificate-data" in pems:
        with tempfile.TemporaryDirectory() as d:
            cert, key = os.path.join(d, "client.crt"), os.path.join(d, "client.key")
            for path, field in ((cert, "client-certificate-data"), (key, "client-key-data")):
                with open(path, "wb") as f:
                    f.write(pems[field])
            ctx.load_cert_chain(cert, key)
    return ctx


def urlopen(req, timeout):
    url = req.full_url if isinstance(req, urllib.request.Request) else req
    ctx = next((c for s, c in _TLS.items() if url.startswith(s)), None)
    return urllib.request.urlopen(req, timeout=timeout, context=ctx)


def kube_pem(kubeconfig, out):
    """Writes the kubeconfig's ca.crt, client.crt, client.key into OUT; prints the server URL."""
    import base64

    text = open(kubeconfig).read()
    os.makedirs(out, exist_ok=True)
    for field, name in (("certificate-authority-data", "ca.crt"),
                        ("client-certificate-data", "client.crt"),
                        ("client-key-data", "client.key")):
        m = re.search(field + r":\s*(\S+)", text)
        if not m:
            print(f"{kubeconfig}: no {field}", file=sys.stderr)
            return 1
        with open(os.path.join(out, name), "wb") as f:
            f.write(base64.b64decode(m.group(1)))
    print(re.search(r"server:\s*(\S+)", text).group(1).strip("'\""))
    return 0


def get_json(url, headers=None, timeout=10):
    req = urllib.request.Request(url, headers=headers or {})
    with urlopen(req, timeout=timeout) as r:
        return json.load(r)


def wait_artifact(url, ns, name, timeout):
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            v = get_json(f"{url}/v1/sources/{ns}/{name}")
            art = (v.get("status") or {}).get("artifact")
            if art:
                print(art.get("revision", "?"))
                return 0
            last = json.dumps(v.get("status"))[:300]
        except Exception as e:  # noqa: BLE001 - keep polling until the deadline
            last = str(e)
        time.sleep(0.2)
    print(f"no artifact for {ns}/{name} after {timeout}s (last: {last})", file=sys.stderr)
    return 1


def create_ready(kubeconfig, ns, name, source, interval, timeout, source_ns=None):
    """The agent's first apply as the agent sees it: from the POST that creates the
    Kustomization (no kubectl process start-up in the measurement) until the watch event
    whose status says Ready=True with a lastAppliedRevision (a watch from the POST's
    resourceVersion: the end is seen when the agent writes it, not at the next poll)."""
    server, headers = kube(kubeconfig)
    base = f"{server}/apis/apply.ferry.dev/v1/namespaces/{ns}/kustomizations"
    body = json.dumps({
        "apiVersion": "apply.ferry.dev/v1", "kind": "Kustomization",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"sourceRef": {"kind": "GitRepository", "name": source,
                               **({"namespace": source_ns} if source_ns else {})},
                 "path": "./apps",
                 "interval": interval, "timeout": "5m", "prune": True},
    }).encode()
    req = urllib.request.Request(base, data=body, method="POST",
                                 headers={**headers, "Content-Type": "application/json"})
    start = time.time_ns()
    with urlopen(req, timeout=30) as r:
        created = json.load(r)
    rv = created["metadata"]["resourceVersion"]
    watch = (f"{base}?watch=true&fieldSelector=metadata.name%3D{name}"
             f"&resourceVersion={rv}&timeoutSeconds={int(timeout)}")
    last = "no status"
    with urlopen(urllib.request.Request(watch, headers=headers), timeout=timeout) as events:
        for line in events:
            ev = json.loads(line)
            st = (ev.get("object") or {}).get("status") or {}
            ready = [c for c in st.get("conditions") or [] if c.get("type") == "Ready"]
            if ready and ready[0].get("status") == "True" and st.get("lastAppliedRevision"):
                print(start, time.time_ns(), st["lastAppliedRevision"])
                return 0
            if ready:
                last = f"Ready={ready[0].get('status')} {ready[0].get('reason')}: {ready[0].get('message', '')[:300]}"
    print(f"Kustomization {ns}/{name} not Ready after {timeout}s (last: {last})", file=sys.stderr)
    return 1


def wait_settled(kubeconfig, ns, timeout):
    """Waits until every Deployment in NS has its status for its generation (the test server's
    workload stand-in, or the real deployment controller), and on a real control plane until
    every ReplicaSet has created its Pods, so the controllers are done writing before the next
    measurement."""
    server, headers = kube(kubeconfig)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        items = get_json(f"{server}/apis/apps/v1/namespaces/{ns}/deployments", headers,
                         timeout=60).get("items") or []
        done = all((d.get("status") or {}).get("observedGeneration") == d["metadata"].get("generation")
                   for d in items)
        if done and items:
            try:
                sets = get_json(f"{server}/apis/apps/v1/namespaces/{ns}/replicasets", headers,
                                timeout=60).get("items") or []
            except urllib.error.HTTPError as e:  # the test server has no ReplicaSets
                sets = [] if e.code == 404 else None
            done = sets is not None and len(sets) >= len(items) and all(
                (r.get("status") or {}).get("replicas", 0) == (r.get("spec") or {}).get("replicas", 0)
                for r in sets)
        if done:
            return 0
        time.sleep(0.2)
    print(f"Deployments in {ns} not settled after {timeout}s", file=sys.stderr)
    return 1


def flow(kubeconfig, trigger, ks_path, revision, timeout):
    """From a source trigger to the Kustomization at KS_PATH (its API path) being Ready=True with
    a lastAppliedRevision containing REVISION, seen on a watch. TRIGGER is `ferry:URL` (POST to the
    source server's reconcile endpoint, as a webhook would) or `flux:PATH` (the
    reconcile.fluxcd.io/requestedAt annotation on the GitRepository at PATH, as `flux reconcile`
    and Flux's webhook receiver do). Prints start-ns ready-ns."""
    server, headers = kube(kubeconfig)
    base, name = ks_path.rsplit("/", 1)
    rv = get_json(server + ks_path, headers)["metadata"]["resourceVersion"]
    watch = (f"{server}{base}?watch=true&fieldSelector=metadata.name%3D{name}"
             f"&resourceVersion={rv}&timeoutSeconds={int(timeout)}")
    events = urlopen(urllib.request.Request(watch, headers=headers), timeout=timeout)
    kind, _, target = trigger.partition(":")
    start = time.time_ns()
    if kind == "ferry":
        urllib.request.urlopen(urllib.request.Request(target, data=b"", method="POST"), timeout=10).read()
    else:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()) + f".{start}"
        body = json.dumps({"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": stamp}}})
        urlopen(urllib.request.Request(server + target, data=body.encode(), method="PATCH", headers={
            **headers, "Content-Type": "application/merge-patch+json"}), timeout=10).read()
    last = "no event"
    with events:
        for line in events:
            ev = json.loads(line)
            st = (ev.get("object") or {}).get("status") or {}
            ready = [c for c in st.get("conditions") or [] if c.get("type") == "Ready"]
            if ready and ready[0].get("status") == "True" and revision in (st.get("lastAppliedRevision") or ""):
                print(start, time.time_ns())
                return 0
            if ready:
                last = (f"Ready={ready[0].get('status')} {ready[0].get('reason')}: "
                        f"{ready[0].get('message', '')[:300]} (applied {st.get('lastAppliedRevision')})")
    print(f"{ks_path} not Ready at {revision} after {timeout}s (last: {last})", file=sys.stderr)
    return 1


def git_http(root, port_file):
    """Git's smart HTTP protocol for the repositories under ROOT on a free loopback port (written
    to PORT_FILE), through `git http-backend` (CGI). Flux's GitRepository takes only http(s) and
    ssh URLs, so both systems fetch the benchmark repository from here."""
    import http.server
    import shutil
    import subprocess

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_GET(self):
            self.cgi()

        def do_POST(self):
            self.cgi()

        def cgi(self):
            path, _, query = self.path.partition("?")
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                body = b""
                while True:
                    size = int(self.rfile.readline().strip().split(b";")[0], 16)
                    if size == 0:
                        self.rfile.readline()
                        break
                    body += self.rfile.read(size)
                    self.rfile.readline()
            else:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            env = {
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "GIT_PROJECT_ROOT": root, "GIT_HTTP_EXPORT_ALL": "1",
                "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null",
                "REQUEST_METHOD": self.command, "PATH_INFO": path, "QUERY_STRING": query,
                "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                "CONTENT_LENGTH": str(len(body)), "REMOTE_ADDR": "127.0.0.1",
            }
            for h in ("Content-Encoding", "Git-Protocol"):
                if self.headers.get(h):
                    env["HTTP_" + h.upper().replace("-", "_")] = self.headers[h]
            out = subprocess.run([shutil.which("git") or "git", "http-backend"], input=body,
                                 env=env, capture_output=True).stdout
            head, _, payload = out.partition(b"\r\n\r\n")
            if not _:
                head, _, payload = out.partition(b"\n\n")
            status, headers = 200, []
            for line in head.decode("latin-1").splitlines():
                k, _, v = line.partition(":")
                if k.lower() == "status":
                    status = int(v.split()[0])
                elif k:
                    headers.append((k, v.strip()))
            self.send_response(status)
            for k, v in headers:
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    with open(port_file + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    os.rename(port_file + ".tmp", port_file)
    server.serve_forever()


def count_objects(kubeconfig, ns):
    server, headers = kube(kubeconfig)
    n = 0
    for path in (f"/api/v1/namespaces/{ns}/configmaps", f"/apis/apps/v1/namespaces/{ns}/deployments"):
        items = get_json(server + path, headers, timeout=60).get("items") or []
        # kube-root-ca.crt and the like are not ours
        n += sum(1 for o in items if (o.get("metadata", {}).get("labels") or {}).get("app.kubernetes.io/part-of") == "bench")
    print(n)


def proc(pid):
    """CPU as utime+stime (clock ticks, includes exited threads) and as the sum of the live
    threads' schedstat run time (ns, exact); memory from /proc/PID/status."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    ns = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                ns += int(f.read().split()[0])
        except OSError:
            pass
    mem = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                mem[k] = int(v.split()[0])
    print(ticks, ns, mem.get("VmRSS", 0), mem.get("VmHWM", 0))


def wait_lines(path, pattern, n, timeout):
    deadline = time.monotonic() + timeout
    count = 0
    while time.monotonic() < deadline:
        try:
            with open(path, errors="replace") as f:
                count = sum(1 for line in f if pattern in line)
        except OSError:
            count = 0
        if count >= n:
            print(time.time_ns(), count)
            return 0
        time.sleep(0.05)
    print(f"{path}: {count} lines with {pattern!r} after {timeout}s, wanted {n}", file=sys.stderr)
    return 1


def reconcile_seconds(url):
    """Sum and count of ferry_applier_reconcile_duration_seconds over all Kustomizations."""
    with urllib.request.urlopen(url, timeout=10) as r:
        text = r.read().decode()
    total = count = 0.0
    for line in text.splitlines():
        if line.startswith("ferry_applier_reconcile_duration_seconds_sum"):
            total += float(line.split()[-1])
        elif line.startswith("ferry_applier_reconcile_duration_seconds_count"):
            count += float(line.split()[-1])
    print(total, count)


def phases(path, start_ns):
    """ms from start_ns to the agent's first "fetched artifact" and "applied" log lines after it."""
    from datetime import datetime

    found = {}
    with open(path, errors="replace") as f:
        for line in f:
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            msg = (ev.get("fields") or {}).get("message")
            if msg not in ("fetched artifact", "applied") or msg in found:
                continue
            ts = datetime.fromisoformat(ev["timestamp"].replace("Z", "+00:00"))
            ns = int(ts.timestamp() * 1e9)
            if ns >= start_ns:
                found[msg] = (ns - start_ns) / 1e6
    print(*(f"{found[m]:.0f}" if m in found else "-" for m in ("fetched artifact", "applied")))


def main(argv):
    cmd, args = argv[1], argv[2:]
    if cmd == "gen":
        gen(args[0], int(args[1]), int(args[2]), args[3] if len(args) > 3 else None)
    elif cmd == "free-port":
        free_port()
    elif cmd == "wait-artifact":
        return wait_artifact(args[0], args[1], args[2], float(args[3]))
    elif cmd == "create-ready":
        return create_ready(args[0], args[1], args[2], args[3], args[4], float(args[5]),
                            args[6] if len(args) > 6 else None)
    elif cmd == "wait-settled":
        return wait_settled(args[0], args[1], float(args[2]))
    elif cmd == "flow":
        return flow(args[0], args[1], args[2], args[3], float(args[4]))
    elif cmd == "git-http":
        git_http(args[0], args[1])
    elif cmd == "kube-pem":
        return kube_pem(args[0], args[1])
    elif cmd == "count-objects":
        count_objects(args[0], args[1])
    elif cmd == "proc":
        proc(args[0])
    elif cmd == "wait-lines":
        return wait_lines(args[0], args[1], int(args[2]), float(args[3]))
    elif cmd == "reconcile-seconds":
        reconcile_seconds(args[0])
    elif cmd == "phases":
        phases(args[0], int(args[1]))
    else:
        print(f"unknown command {cmd}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
