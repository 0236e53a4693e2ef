#!/usr/bin/env bash
# Flux as the benchmark's peer: source-controller and kustomize-controller built from the Go
# module proxy into a cache outside the clone. Nothing of Flux's is committed here: the binaries
# live in the cache, the CRDs are read from the module cache at run time.
#
#   flux-peer.sh build    build both controllers ($FLUX_SC_VERSION, $FLUX_KC_VERSION) into
#                         $FERRY_FLUX_CACHE (default ~/.cache/ferry/flux/<versions>), reusing
#                         binaries whose stamp (versions + Go toolchain) matches; prints the bin dir
#   flux-peer.sh prepare  only the wrapper modules and their downloads (no compiling)
#   flux-peer.sh bin      print the bin directory (after build)
#   flux-peer.sh crds     print the paths of both controllers' CRD files (config/crd/bases in the
#                         module cache)
#
# Why a wrapper module: each controller's go.mod replaces its `api` submodule with `./api` (and
# pins a few dependencies by `replace`); replace directives of a dependency are ignored, so
# `go install …@v` is refused. The wrapper requires the controller, replaces `api` with its
# published version and copies the controller's other (non-local) replace directives.
# The controllers' go.mod asks for a newer Go than the machine's may be: GOTOOLCHAIN=auto lets
# the go command fetch that toolchain from the module proxy (golang.org/toolchain).
set -euo pipefail

# v1.9.6, not the latest v1.10.1: the module proxy answers 403 ("This module version is not
# available") for modules v1.10.x needs (github.com/fluxcd/pkg/{apis/crypto@v0.5.0,
# masktoken@v0.10.0,spiffe@v0.2.0,http/fetch@v0.30.1,http/transport@v0.9.0,artifact@v0.27.1},
# github.com/sigstore/cosign/v3@v3.1.4, …/authn/k8schain@v0.0.0-20261013193525-92aac6186bc4),
# and serves no version at all of some of them. v1.9.6's only missing module is
# github.com/fluxcd/pkg/artifact@v0.18.3 (source-controller); v0.18.0 is served and replaces it
# (FLUX_SC_REPLACE, `go mod edit -replace` arguments; same for FLUX_KC_REPLACE).
FLUX_SC_VERSION=${FLUX_SC_VERSION:-v1.9.6}
FLUX_KC_VERSION=${FLUX_KC_VERSION:-v1.9.6}
FLUX_SC_REPLACE=${FLUX_SC_REPLACE-github.com/fluxcd/pkg/artifact=github.com/fluxcd/pkg/artifact@v0.18.0}
FLUX_KC_REPLACE=${FLUX_KC_REPLACE-}
export GOTOOLCHAIN=${FLUX_GOTOOLCHAIN:-auto}
cache_root=${FERRY_FLUX_CACHE:-$HOME/.cache/ferry/flux}
versions="sc-$FLUX_SC_VERSION-kc-$FLUX_KC_VERSION"
bin_dir="$cache_root/$versions"
src_dir="$cache_root/src-$versions"

log() { echo "flux-peer: $*" >&2; }

# Module directory in the module cache (downloads it if needed).
module_dir() {
  (cd "$src_dir/$1" 2>/dev/null || cd /tmp; go mod download -json "$2@$3") |
    python3 -c 'import json,sys; d=json.load(sys.stdin); print(d.get("Dir") or sys.exit("go mod download: "+d.get("Error","no Dir")))'
}

# The wrapper module for one controller: NAME MODULE VERSION [EXTRA_REPLACES].
wrapper() {
  local name=$1 module=$2 version=$3 extra=${4:-} dir="$src_dir/$1" r
  mkdir -p "$dir"
  (
    cd "$dir"
    [ -f go.mod ] || go mod init "ferry.dev/bench/flux-$name" >/dev/null 2>&1
    local gomod
    gomod=$(go mod download -json "$module@$version" |
      python3 -c 'import json,sys; d=json.load(sys.stdin); print(d.get("GoMod") or sys.exit("go mod download: "+d.get("Error","no GoMod")))')
    # The controller's go version and its replace directives, except the local ./api one.
    go mod edit -go="$(go mod edit -json "$gomod" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Go"])')"
    go mod edit -json "$gomod" | python3 -c '
import json, sys
for r in json.load(sys.stdin).get("Replace") or []:
    new = r["New"]
    if new["Path"].startswith("."):
        continue
    old = r["Old"]["Path"] + ("@" + r["Old"]["Version"] if r["Old"].get("Version") else "")
    print("-replace=" + old + "=" + new["Path"] + "@" + new["Version"])
' | xargs -r go mod edit
    go mod edit -replace="$module/api=$module/api@$version"
    for r in $extra; do go mod edit -replace="$r"; done
    go get -tool "$module@$version" >/dev/null
  )
}

prepare() {
  mkdir -p "$src_dir"
  wrapper sc github.com/fluxcd/source-controller "$FLUX_SC_VERSION" "$FLUX_SC_REPLACE"
  wrapper kc github.com/fluxcd/kustomize-controller "$FLUX_KC_VERSION" "$FLUX_KC_REPLACE"
}

build() {
  local go_version stamp
  mkdir -p "$bin_dir"
  prepare
  go_version=$(cd "$src_dir/sc" && go env GOVERSION)
  stamp="source-controller=$FLUX_SC_VERSION ($FLUX_SC_REPLACE) kustomize-controller=$FLUX_KC_VERSION ($FLUX_KC_REPLACE) go=$go_version"
  if [ -f "$bin_dir/stamp" ] && [ "$(cat "$bin_dir/stamp")" = "$stamp" ] \
     && [ -x "$bin_dir/source-controller" ] && [ -x "$bin_dir/kustomize-controller" ]; then
    log "reusing $bin_dir ($stamp)"
    echo "$bin_dir"
    return
  fi
  local name module
  for name in sc kc; do
    case $name in
      sc) module=github.com/fluxcd/source-controller ;;
      kc) module=github.com/fluxcd/kustomize-controller ;;
    esac
    log "building ${module##*/} with $go_version"
    (cd "$src_dir/$name" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" \
      -o "$bin_dir/${module##*/}.new" "$module")
    mv "$bin_dir/${module##*/}.new" "$bin_dir/${module##*/}"
  done
  echo "$stamp" > "$bin_dir/stamp"
  log "built into $bin_dir"
  echo "$bin_dir"
}

crds() {
  local d
  d=$(module_dir sc github.com/fluxcd/source-controller "$FLUX_SC_VERSION")
  ls "$d"/config/crd/bases/*.yaml
  d=$(module_dir kc github.com/fluxcd/kustomize-controller "$FLUX_KC_VERSION")
  ls "$d"/config/crd/bases/*.yaml
}

case "${1:-}" in
  build) build ;;
  prepare) prepare ;;
  bin) echo "$bin_dir" ;;
  crds) crds ;;
  *) echo "usage: $0 build|bin|crds" >&2; exit 2 ;;
esac
