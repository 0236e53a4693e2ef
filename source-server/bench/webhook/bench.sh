#!/usr/bin/env bash
# git push → webhook → artifact → agent applied, on the Kubernetes API test server with the
# real ferry-source-server and ferry-applier binaries; poll intervals 10m. Results: RESULTS.md.
# Usage: source-server/bench/webhook/bench.sh [PUSHES]   (default 50)
set -euo pipefail
cd "$(dirname "$0")/../../.."
cargo build --quiet -p ferry-source-server -p ferry-applier -p ferry-tests --bin ferry-webhook-bench
target/debug/ferry-webhook-bench --pushes "${1:-50}"
