#!/usr/bin/env bash
# Event-stream fan-out (issue 18): N clients on GET /v1/events of the release
# ferry-source-server — RSS idle / connected / after they leave, and the time a new artifact
# takes to reach all of them — for streams served beside hyper ("raw", how agents connect)
# and, as the peer in the same run, streams hyper serves ("hyper", the server before).
# Usage: source-server/bench/fanout/bench.sh [CLIENTS...]   (default 1000 5000 10000)
# Results: RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/../../.."
# Each client is a socket in the bench and one in the server.
ulimit -n "$(ulimit -Hn)"
cargo build --quiet --release -p ferry-source-server --bin ferry-source-server
cargo build --quiet --release -p ferry-tests --bin ferry-fanout-bench
args=()
for n in "${@:-1000 5000 10000}"; do
  for k in $n; do args+=(--clients "$k"); done
done
target/release/ferry-fanout-bench --bin-dir target/release "${args[@]}"
