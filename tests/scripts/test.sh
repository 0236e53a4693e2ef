#!/usr/bin/env bash
# Ferry's test command (the README's second command; CI runs it through .ci/run).
# Installs every tool the tests drive — kubectl v1.35.2 + helm v4.1.4 (the real clients the
# Kubernetes API test server is judged by, and the kustomize oracle), an S3-protocol server
# (moto) — then checks formatting and lints, and runs every test in the workspace.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"

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

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo build (the e2e tests run the ferry-applier / ferry-source-server binaries)"
cargo build --workspace --bins --locked
echo "== cargo test"
cargo test --workspace --locked --no-fail-fast
