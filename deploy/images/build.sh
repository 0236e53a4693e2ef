#!/usr/bin/env bash
# Builds the container images of ferry-source-server and ferry-applier without a container
# engine (there is none on the build machines): release binaries → deploy/images/oci.py → an
# OCI image layout per image in target/images/<name>/oci (and the same tree in .../rootfs for
# the Containerfiles). Checked with `skopeo inspect` when skopeo is installed; prints sizes.
#
#   deploy/images/build.sh [--profile release|dev] [--bin-dir DIR] [--out DIR]
#
# Push with skopeo: skopeo copy oci:target/images/ferry-applier/oci:latest docker://REGISTRY/ferry-applier:TAG
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
profile=release
bin_dir=""
out="$repo/target/images"
while [ $# -gt 0 ]; do
  case "$1" in
    --profile) profile=$2; shift 2 ;;
    --bin-dir) bin_dir=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
if [ -z "$bin_dir" ]; then
  (cd "$repo" && cargo build --locked --profile "$profile" --bin ferry-source-server --bin ferry-applier)
  dir=$profile; [ "$profile" = dev ] && dir=debug
  bin_dir="$repo/target/$dir"
fi
helm=${FERRY_HELM:-$repo/.tools/bin/helm}
[ -x "$helm" ] || "$repo/tests/scripts/install-tools.sh" >/dev/null
version=$(cd "$repo" && git describe --always --dirty 2>/dev/null || echo unknown)
label="--label=org.opencontainers.image.revision=$version"

# The source server: ssh:// sources run the ssh client, so it comes along (with its libraries).
ssh_files=()
if [ -x /usr/bin/ssh ]; then ssh_files=(--file /usr/bin/ssh:/usr/bin/ssh); fi
python3 "$repo/deploy/images/oci.py" --out "$out/ferry-source-server" "$label" --strip \
  --file "$bin_dir/ferry-source-server:/usr/local/bin/ferry-source-server" "${ssh_files[@]}" \
  --entrypoint /usr/local/bin/ferry-source-server --cmd serve
# The agent renders HelmReleases with the real helm (a static binary).
python3 "$repo/deploy/images/oci.py" --out "$out/ferry-applier" "$label" --strip \
  --file "$bin_dir/ferry-applier:/usr/local/bin/ferry-applier" \
  --file "$helm:/usr/local/bin/helm" \
  --env FERRY_HELM=/usr/local/bin/helm \
  --entrypoint /usr/local/bin/ferry-applier --cmd run

for name in ferry-source-server ferry-applier; do
  layout="$out/$name/oci"
  if command -v skopeo >/dev/null; then
    skopeo inspect --raw "oci:$layout:latest" >/dev/null
    skopeo inspect "oci:$layout:latest" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(sys.argv[1], d["Digest"], d["Os"] + "/" + d["Architecture"])' "$name"
  fi
  echo "$name: $(du -sb "$layout/blobs" | cut -f1) bytes compressed, $(du -sb "$out/$name/rootfs" | cut -f1) bytes unpacked"
done
