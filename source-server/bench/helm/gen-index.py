#!/usr/bin/env python3
"""Writes a large Helm repository index.yaml, shaped like `helm repo index` output of a big
public repository (Bitnami, TrueCharts): per version annotations, dependencies, maintainers,
keywords, sources, a description, digest, created time and one URL.

    gen-index.py OUT [--charts N] [--versions M] [--app-digest HEX]

With --app-digest, the index also lists a real chart, bench-app 1.4.2 at the relative URL
bench-app-1.4.2.tgz with that sha256 (what bench.sh resolves and downloads).

Defaults: 500 charts x 100 versions = 50,000 chart versions, 49.6 MiB (just under the
default --helm-index-max-size). The output is
deterministic (a fixed seed), so two runs give the same bytes.
"""
import argparse
import hashlib
import random

p = argparse.ArgumentParser()
p.add_argument("out")
p.add_argument("--charts", type=int, default=500)
p.add_argument("--versions", type=int, default=100)
p.add_argument("--app-digest")
a = p.parse_args()
rng = random.Random(14)
words = ("cloud native database cache proxy monitoring metrics logging operator web server "
         "queue storage backup security ingress mesh gateway analytics search stream").split()


def q(s):
    return '"' + s.replace('\\', '\\\\').replace('"', '\\"') + '"'


with open(a.out, "w") as f:
    f.write("apiVersion: v1\nentries:\n")
    for c in range(a.charts):
        name = f"{rng.choice(words)}-{rng.choice(words)}-{c}"
        f.write(f"  {name}:\n")
        for v in range(a.versions):
            major, minor, patch = v // 40, (v // 8) % 5, v % 8
            version = f"{major}.{minor}.{patch}"
            if v % 25 == 24:
                version += f"-rc.{v % 3}"
            digest = hashlib.sha256(f"{name}-{version}".encode()).hexdigest()
            desc = " ".join(rng.choice(words) for _ in range(10))
            f.write(f"  - annotations:\n")
            f.write(f"      category: {rng.choice(words).capitalize()}\n")
            f.write(f"      images: |\n")
            for i in range(1):
                f.write(f"        - name: {rng.choice(words)}\n          image: docker.io/example/{name}:{version}-debian-12-r{i}\n")
            f.write(f"      licenses: Apache-2.0\n")
            f.write(f"    apiVersion: v2\n    appVersion: {major + 1}.{minor}.{patch * 3}\n")
            f.write(f"    created: \"2025-0{1 + v % 9}-1{v % 9}T12:{v % 60:02d}:00.{v:06d}Z\"\n")
            f.write("    dependencies:\n")
            for dep in ("common",):
                f.write(f"    - name: {dep}\n      repository: oci://registry.example/charts\n"
                        f"      tags:\n      - example-common\n      version: 2.x.x\n")
            f.write(f"    description: {q(desc)}\n")
            f.write(f"    digest: {digest}\n")
            f.write(f"    home: https://example.com/charts/{name}\n")
            f.write(f"    icon: https://example.com/icons/{name}.svg\n")
            f.write("    keywords:\n")
            for _ in range(3):
                f.write(f"    - {rng.choice(words)}\n")
            f.write("    maintainers:\n    - name: Example Maintainers\n      url: https://github.com/example/charts\n")
            f.write(f"    name: {name}\n")
            f.write(f"    sources:\n    - https://github.com/example/charts/tree/main/{name}\n")
            f.write(f"    urls:\n    - https://charts.example.com/{name}-{version}.tgz\n")
            f.write(f"    version: {version}\n")
    if a.app_digest:
        f.write("  bench-app:\n")
        for version, digest, url in (("1.4.2", a.app_digest, "bench-app-1.4.2.tgz"),
                                     # A digest as helm writes one: hex with letters (an
                                     # all-digit one would be a YAML integer, which the fast
                                     # scanner rightly leaves to the general parser).
                                     ("2.0.0", hashlib.sha256(b"bench-app-2.0.0").hexdigest(),
                                      "bench-app-2.0.0.tgz")):
            f.write(f"  - apiVersion: v2\n    created: \"2025-10-01T00:00:00Z\"\n"
                    f"    digest: {digest}\n    name: bench-app\n    urls:\n    - {url}\n"
                    f"    version: {version}\n")
    f.write("generated: \"2025-10-01T00:00:00Z\"\n")
