#!/usr/bin/env bash
# Ferry's test command (the README's second command; CI runs it through .ci/run).
# Installs every tool the tests drive — kubectl v1.35.2 + helm v4.1.4 (the real clients the
# Kubernetes API test server is judged by, and the kustomize oracle), an S3-protocol server
# (moto) — then checks formatting and lints, runs every test in the workspace (on the API test
# server), builds (or reuses) the real control plane — kube-apiserver, kube-controller-manager
# and etcd from the Go module proxy, needs Go ≥ 1.25 — and runs the e2e suite again on it.
# FERRY_SKIP_REAL_CLUSTER=1 skips the real-control-plane part (no Go needed).
# Prints how long each part took.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"

timings=()
part_start=0
part() {
  part_end
  echo "== $*"
  part_name=$*
  part_start=$(date +%s)
}
part_end() {
  if [ "$part_start" != 0 ]; then
    timings+=("$(printf '%5ss  %s' $(( $(date +%s) - part_start )) "$part_name")")
    part_start=0
  fi
}
report() {
  part_end
  echo "== time per part"
  printf '%s\n' "${timings[@]}"
}
trap report EXIT
part "tools (kubectl, helm, moto, sshd, chromium, skopeo)"

"$repo/tests/scripts/install-tools.sh"
export FERRY_KUBECTL="$repo/.tools/bin/kubectl" FERRY_HELM="$repo/.tools/bin/helm"

# moto's S3 server: the S3 storage tests start it on loopback themselves.
if ! command -v moto_server >/dev/null 2>&1; then
  python3 -m pip install --quiet 'moto[server]==5.2.5'
fi

# OpenSSH server + client: the ssh:// transport tests run their own sshd on loopback.
if [ ! -x /usr/sbin/sshd ] || ! command -v ssh-keygen >/dev/null 2>&1; then
  sudo_=""; [ "$(id -u)" -eq 0 ] || sudo_="sudo"
  $sudo_ apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq openssh-server openssh-client >/dev/null
fi

# Debian's Chromium and its WebDriver: the status page test drives a real headless browser.
# skopeo: the image test has the OCI layouts deploy/images/build.sh writes read by it.
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ] || [ ! -x /usr/bin/skopeo ]; then
  sudo_=""; [ "$(id -u)" -eq 0 ] || sudo_="sudo"
  $sudo_ apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq chromium chromium-driver skopeo >/dev/null
fi

part "cargo fmt --check"
cargo fmt --all -- --check
part "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
part "cargo build (the e2e tests run the ferry-applier / ferry-source-server binaries)"
cargo build --workspace --bins --locked
part "cargo test (API test server)"
status=0
cargo test --workspace --locked --no-fail-fast || status=$?

if [ -n "${FERRY_SKIP_REAL_CLUSTER:-}" ]; then
  echo "== FERRY_SKIP_REAL_CLUSTER set: the e2e suite did not run on the real control plane"
  exit "$status"
fi
command -v go >/dev/null || { echo "Go is needed to build the real control plane (or set FERRY_SKIP_REAL_CLUSTER=1)" >&2; exit 1; }
part "real control plane: build or reuse (cold ≈ 10 min)"
tests/scripts/real-cluster.sh build
# Every cluster the e2e tests start lives under this directory; whatever a killed test left
# running is stopped on exit.
real_tmp=$(mktemp -d -t ferry-real-XXXXXX)
stop_real() {
  for pidfile in "$real_tmp"/*/apiserver.pid "$real_tmp"/*/*/apiserver.pid; do
    [ -f "$pidfile" ] && tests/scripts/real-cluster.sh stop "$(dirname "$pidfile")"
  done
  rm -rf "$real_tmp"
}
trap 'stop_real; report' EXIT
part "real control plane: start, ready, stop (one cluster)"
tests/scripts/real-cluster.sh start "$real_tmp/smoke" >/dev/null
tests/scripts/real-cluster.sh stop "$real_tmp/smoke"
part "cargo test e2e_* (real control plane, one cluster per test)"
# --workspace (not -p ferry-tests): the same feature set as above, so nothing is rebuilt.
TMPDIR=$real_tmp FERRY_CLUSTER=real cargo test --workspace --locked --no-fail-fast --test 'e2e_*' \
  || status=$?
exit "$status"
