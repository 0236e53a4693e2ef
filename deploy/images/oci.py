#!/usr/bin/env python3
"""Assembles an OCI image layout from files on this machine, without a container engine.

One layer: the given files, the shared libraries they need (found with ldd, so the image runs
the same glibc binaries the build produced), CA certificates, and /etc/passwd with the nonroot
user 65532. The layer tar is canonical (sorted entries, mtime 0, root-owned) and gzip'd without
a timestamp, so the same inputs give the same digests. Writes <out>/oci (an OCI image layout:
oci-layout, index.json, blobs/sha256/*) and <out>/rootfs (the same tree, for a Containerfile
FROM scratch)."""

import argparse
import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile

NONROOT = 65532


def needed_libs(path):
    """Absolute paths of the shared objects `path` loads (ldd), the loader included."""
    out = subprocess.run(["ldd", path], capture_output=True, text=True)
    if out.returncode != 0:  # static binary
        return []
    libs = []
    for line in out.stdout.splitlines():
        parts = line.split()
        if "=>" in parts:
            target = parts[parts.index("=>") + 1]
            if target.startswith("/"):
                libs.append(target)
        elif parts and parts[0].startswith("/"):
            libs.append(parts[0])
    return libs


def strip_debug(path):
    """Drops debug sections (line tables) but keeps symbols, so a panic's backtrace still names
    functions; the binaries are built with line tables for local debugging, not for the image."""
    if shutil.which("strip") is None:
        return
    with open(path, "rb") as f:
        if f.read(4) != b"\x7fELF":
            return
    subprocess.run(["strip", "--strip-debug", path], check=True)


def populate(rootfs, files, strip):
    """Copies (src, dst) files and what they need into rootfs."""
    wanted = {}
    for src, dst in files:
        wanted[dst] = src
        for lib in needed_libs(src):
            wanted.setdefault(lib, os.path.realpath(lib))
    wanted["/etc/ssl/certs/ca-certificates.crt"] = "/etc/ssl/certs/ca-certificates.crt"
    for dst, src in wanted.items():
        target = os.path.join(rootfs, dst.lstrip("/"))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copyfile(src, target)
        shutil.copymode(src, target)
        if strip and dst in dict((d, s) for s, d in files):
            strip_debug(target)
    etc = os.path.join(rootfs, "etc")
    with open(os.path.join(etc, "passwd"), "w") as f:
        f.write(f"root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:{NONROOT}:{NONROOT}:nonroot:/home/nonroot:/sbin/nologin\n")
    with open(os.path.join(etc, "group"), "w") as f:
        f.write(f"root:x:0:\nnonroot:x:{NONROOT}:\n")
    for d in ("tmp", "home/nonroot"):
        os.makedirs(os.path.join(rootfs, d), exist_ok=True)


def layer_tar(rootfs):
    """The canonical tar of rootfs (bytes)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        entries = []
        for dirpath, dirnames, filenames in os.walk(rootfs):
            dirnames.sort()
            for name in sorted(dirnames + filenames):
                entries.append(os.path.join(dirpath, name))
        for path in sorted(entries):
            rel = os.path.relpath(path, rootfs)
            info = tar.gettarinfo(path, arcname=rel)
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            if rel == "tmp":
                info.mode = 0o1777
            elif rel.startswith("home/nonroot"):
                info.uid = info.gid = NONROOT
            if info.isfile():
                with open(path, "rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)
    return buf.getvalue()


def blob(layout, data):
    digest = hashlib.sha256(data).hexdigest()
    with open(os.path.join(layout, "blobs", "sha256", digest), "wb") as f:
        f.write(data)
    return f"sha256:{digest}", len(data)


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", required=True)
    p.add_argument("--tag", default="latest")
    p.add_argument("--file", action="append", default=[], help="SRC:DST")
    p.add_argument("--entrypoint", required=True)
    p.add_argument("--cmd", action="append", default=[])
    p.add_argument("--env", action="append", default=[])
    p.add_argument("--label", action="append", default=[])
    p.add_argument("--strip", action="store_true", help="strip debug sections of the --file binaries")
    a = p.parse_args()

    shutil.rmtree(a.out, ignore_errors=True)
    rootfs, layout = os.path.join(a.out, "rootfs"), os.path.join(a.out, "oci")
    os.makedirs(rootfs)
    os.makedirs(os.path.join(layout, "blobs", "sha256"))
    populate(rootfs, [tuple(f.split(":", 1)) for f in a.file], a.strip)

    tar = layer_tar(rootfs)
    diff_id = "sha256:" + hashlib.sha256(tar).hexdigest()
    gz = gzip.compress(tar, compresslevel=6, mtime=0)
    layer_digest, layer_size = blob(layout, gz)
    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": "1970-01-01T00:00:00Z",
        "config": {
            "User": f"{NONROOT}:{NONROOT}",
            "Entrypoint": [a.entrypoint],
            "Cmd": a.cmd,
            "Env": ["PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/home/nonroot", *a.env],
            "WorkingDir": "/home/nonroot",
            "Labels": dict(l.split("=", 1) for l in a.label),
        },
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "deploy/images/oci.py"}],
    }
    config_digest, config_size = blob(layout, json.dumps(config, sort_keys=True).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer_digest, "size": layer_size}],
    }
    manifest_digest, manifest_size = blob(layout, json.dumps(manifest, sort_keys=True).encode())
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest,
            "size": manifest_size,
            "annotations": {"org.opencontainers.image.ref.name": a.tag},
        }],
    }
    with open(os.path.join(layout, "index.json"), "w") as f:
        json.dump(index, f, sort_keys=True)
    with open(os.path.join(layout, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    print(json.dumps({"manifest": manifest_digest, "layer_compressed": layer_size, "layer_uncompressed": len(tar)}))


if __name__ == "__main__":
    main()
