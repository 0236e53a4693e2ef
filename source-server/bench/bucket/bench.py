#!/usr/bin/env python3
"""Bucket benchmark: 10,000 objects in moto's S3 server, one of them changed.

Measured in one run, against the same server and bucket:

  Ferry     ferry-source-server with a Bucket source: the first artifact (every object
            downloaded), then, after one object changed, the time from the reconcile request to
            the new revision being served, and what was downloaded for it (the server's
            ferry_source_bucket_{objects,bytes}_downloaded_total counters).
  full      what a tool that downloads every object again does (Flux's source-controller on a
            new revision, or an `aws s3 sync`-style loop into an empty directory): list the
            prefix, then GET every object with 16 threads (boto3).

Usage: source-server/bench/bucket/bench.py [--objects N] [--size BYTES] [--bin DIR]
"""
import argparse
import hashlib
import concurrent.futures
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import boto3
from botocore.config import Config

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "../../.."))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url, limit=60):
    end = time.time() + limit
    while time.time() < end:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except Exception:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not answer within {limit}s")


def get_json(url):
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.load(r)


def metric(base, name):
    text = urllib.request.urlopen(base + "/metrics", timeout=30).read().decode()
    for line in text.splitlines():
        if line.startswith(name + "{") and 'name="site"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def wait_revision(base, not_revision, limit=600):
    end = time.time() + limit
    while time.time() < end:
        v = get_json(base + "/v1/buckets/bench/site")
        a = v["status"].get("artifact")
        ready = [c for c in v["status"].get("conditions", []) if c["type"] == "Ready"]
        if a and a["revision"] != not_revision and ready and ready[0]["status"] == "True":
            return a
        if ready and ready[0]["status"] == "False" and "Stalled" in json.dumps(v):
            raise SystemExit(f"bucket stalled: {ready[0]['message']}")
        time.sleep(0.05)
    raise SystemExit("no new revision in time")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--objects", type=int, default=10_000)
    p.add_argument("--size", type=int, default=600)
    p.add_argument("--bin", default=os.path.join(ROOT, "target", "debug"))
    args = p.parse_args()
    work = tempfile.mkdtemp(prefix="ferry-bucket-bench.")
    procs = []
    try:
        port = free_port()
        procs.append(subprocess.Popen(["moto_server", "-H", "127.0.0.1", "-p", str(port)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        endpoint = f"http://127.0.0.1:{port}"
        wait_http(endpoint + "/")
        s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="bench",
                          aws_secret_access_key="bench", region_name="us-east-1",
                          config=Config(max_pool_connections=32))
        s3.create_bucket(Bucket="site")
        body = lambda i, gen: (f"# object {i} generation {gen}\n".encode()
                               + b"x" * (args.size - 40)).ljust(args.size, b"\n")
        keys = [f"apps/d{i % 100:02d}/obj-{i:05d}.yaml" for i in range(args.objects)]
        t = time.time()
        with concurrent.futures.ThreadPoolExecutor(16) as ex:
            list(ex.map(lambda ik: s3.put_object(Bucket="site", Key=ik[1], Body=body(ik[0], 1)),
                        enumerate(keys)))
        print(f"uploaded {len(keys)} objects of {args.size} B in {time.time() - t:.1f}s", file=sys.stderr)

        sport = free_port()
        base = f"http://127.0.0.1:{sport}"
        config = os.path.join(work, "sources.yaml")
        with open(config, "w") as f:
            f.write(f"""apiVersion: source.ferry.dev/v1
kind: Bucket
metadata: {{name: site, namespace: bench}}
spec:
  bucketName: site
  endpoint: 127.0.0.1:{port}
  insecure: true
  prefix: apps/
  interval: 1h
  timeout: 10m
  secretRef: {{name: s3}}
---
apiVersion: v1
kind: Secret
metadata: {{name: s3, namespace: bench}}
stringData: {{accesskey: bench, secretkey: bench}}
""")
        t0 = time.time()
        log = open(os.path.join(work, "source-server.log"), "w")
        procs.append(subprocess.Popen(
            [os.path.join(args.bin, "ferry-source-server"), "serve", "--config", config,
             "--storage", os.path.join(work, "storage"), "--cache", os.path.join(work, "mirrors"),
             "--listen", f"127.0.0.1:{sport}"], stdout=log, stderr=log))
        wait_http(base + "/readyz")
        first = wait_revision(base, None)
        first_s = time.time() - t0
        first_objects = metric(base, "ferry_source_bucket_objects_downloaded_total")
        first_bytes = metric(base, "ferry_source_bucket_bytes_downloaded_total")

        s3.put_object(Bucket="site", Key=keys[4242], Body=body(4242, 2))
        t1 = time.time()
        req = urllib.request.Request(base + "/v1/buckets/bench/site/reconcile", method="POST")
        urllib.request.urlopen(req, timeout=30)
        second = wait_revision(base, first["revision"])
        incr_s = time.time() - t1
        incr_objects = metric(base, "ferry_source_bucket_objects_downloaded_total") - first_objects
        incr_bytes = metric(base, "ferry_source_bucket_bytes_downloaded_total") - first_bytes

        # Listing alone (both sides pay it), and Flux's revision computed from it.
        t3 = time.time()
        etags = {}
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket="site", Prefix="apps/"):
            etags.update({o["Key"]: o["ETag"].strip('"') for o in page.get("Contents", [])})
        list_s = time.time() - t3
        lines = "".join(f"{k} {etags[k]}\n" for k in sorted(etags))
        flux = "sha256:" + hashlib.sha256(lines.encode()).hexdigest()
        assert flux == second["revision"], (flux, second["revision"])

        # The full download, as a tool without an ETag cache does it on every new revision.
        dest = os.path.join(work, "full")
        t2 = time.time()
        listed = []
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket="site", Prefix="apps/"):
            listed += [o["Key"] for o in page.get("Contents", [])]

        def fetch(key):
            data = s3.get_object(Bucket="site", Key=key)["Body"].read()
            path = os.path.join(dest, key)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(data)
            return len(data)

        with concurrent.futures.ThreadPoolExecutor(16) as ex:
            full_bytes = sum(ex.map(fetch, listed))
        full_s = time.time() - t2

        print(json.dumps({
            "objects": args.objects, "object_size": args.size,
            "ferry_first": {"seconds": round(first_s, 2), "objects": first_objects,
                            "bytes": first_bytes, "revision": first["revision"],
                            "artifact_tar_bytes": first["size"]},
            "ferry_one_changed": {"seconds": round(incr_s, 2), "objects": incr_objects,
                                  "bytes": incr_bytes, "revision": second["revision"]},
            "list_only": {"seconds": round(list_s, 2), "flux_revision_matches": True},
            "full_download_16_threads": {"seconds": round(full_s, 2), "objects": len(listed),
                                         "bytes": full_bytes},
        }, indent=2))
    finally:
        for pr in procs:
            pr.terminate()
        for pr in procs:
            try:
                pr.wait(10)
            except subprocess.TimeoutExpired:
                pr.kill()
        if os.environ.get("BENCH_KEEP"):
            print(f"work dir kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
