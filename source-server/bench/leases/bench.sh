#!/usr/bin/env bash
# Lease requests of source-server replicas coordinating many sources (issue 16), measured on
# the real control plane (tests/scripts/real-cluster.sh), each binary in the same run.
#
#   source-server/bench/leases/bench.sh [SOURCES] [REPLICAS]        (default 300 3)
#
# For each LABEL=BINARY of $BENCH_BINS in turn: REPLICAS `ferry-source-server serve
# --lease-namespace bench --lease-duration $BENCH_DURATION` processes (config file mode, one
# shared storage directory, SOURCES GitRepositories of one local repository, interval 1h so
# Git costs nothing), started one after the other; once every source's Lease is held and one
# more lease duration passed, the kube-apiserver's apiserver_request_total for leases (by verb)
# is counted over $BENCH_WINDOW seconds, net of the same window with no replica running. The
# replicas' own ferry_source_lease_requests_total is printed too (absent in older binaries).
# Then the Leases are deleted and the next binary runs.
#
# Env: BENCH_BINS (default "after=target/debug/ferry-source-server"; e.g.
# "before=/tmp/ferry-source-server.main after=target/debug/ferry-source-server"),
# BENCH_WINDOW (s, default 60), BENCH_DURATION (default 15s), FERRY_KUBECTL, BENCH_KEEP=1.
# Request counts are timer-driven: a debug build counts the same as a release one.
set -euo pipefail
SOURCES=${1:-300}
REPLICAS=${2:-3}
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
BINS=${BENCH_BINS:-after=$ROOT/target/debug/ferry-source-server}
WINDOW=${BENCH_WINDOW:-60}
DURATION=${BENCH_DURATION:-15s}
KUBECTL=${FERRY_KUBECTL:-$ROOT/.tools/bin/kubectl}
[ -x "$KUBECTL" ] || KUBECTL=$(command -v kubectl) || { echo "no kubectl: set FERRY_KUBECTL" >&2; exit 1; }
REAL_CLUSTER=$ROOT/tests/scripts/real-cluster.sh
DUR_S=$(python3 -c "import re,sys; print(sum(int(n)*{'h':3600,'m':60,'s':1}[u] for n,u in re.findall(r'(\d+)([hms])',sys.argv[1])))" "$DURATION")
WORK=$(mktemp -d /tmp/ferry-leases.XXXXXX)
PIDS=()
stop_pids() {
  local pid
  for pid in "$@"; do kill "$pid" 2>/dev/null || true; done
  for pid in "$@"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
}
cleanup() {
  local rc=$?
  [ ${#PIDS[@]} -eq 0 ] || stop_pids "${PIDS[@]}"
  [ -d "$WORK/cluster" ] && "$REAL_CLUSTER" stop "$WORK/cluster" >&2
  if [ -n "${BENCH_KEEP:-}" ] || [ $rc -ne 0 ]; then echo "work dir kept: $WORK" >&2; else rm -rf "$WORK"; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM
log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }
k() { "$KUBECTL" --kubeconfig "$WORK/cluster/kubeconfig" --cache-dir "$WORK/kube-cache" "$@"; }

# Lease requests so far, by verb, as JSON.
snap() {
  k get --raw /metrics | python3 -c '
import json, re, sys
out = {}
for line in sys.stdin:
    if line.startswith("apiserver_request_total{") and "resource=\"leases\"" in line:
        verb = re.search(r"verb=\"([A-Z]+)\"", line).group(1)
        out[verb] = out.get(verb, 0) + float(line.rsplit(" ", 1)[1])
print(json.dumps(out))'
}
rates() { # BEFORE AFTER BASE_BEFORE BASE_AFTER WINDOW
  python3 - "$@" <<'PY'
import json, sys
a, b, c, d = (json.loads(x) for x in sys.argv[1:5])
w = float(sys.argv[5])
verbs = sorted(set(a) | set(b))
net = {v: ((b.get(v, 0) - a.get(v, 0)) - (d.get(v, 0) - c.get(v, 0))) / w for v in verbs}
print(" ".join(f"{v}={r:.2f}/s" for v, r in net.items() if abs(r) > 0.004), f"| all={sum(net.values()):.2f}/s")
PY
}

log "starting the real control plane"
"$REAL_CLUSTER" start "$WORK/cluster" > "$WORK/real-cluster.log" 2>&1 || { tail -n 5 "$WORK/real-cluster.log" >&2; exit 1; }
k create namespace bench > /dev/null

export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null GIT_AUTHOR_NAME=b GIT_AUTHOR_EMAIL=b@x GIT_COMMITTER_NAME=b GIT_COMMITTER_EMAIL=b@x
git init -q -b main "$WORK/repo"
echo "kind: ConfigMap" > "$WORK/repo/cm.yaml"
git -C "$WORK/repo" add . && git -C "$WORK/repo" commit -qm one
python3 - "$WORK/sources.yaml" "$SOURCES" "$WORK/repo" <<'PY'
import sys
out, n, repo = sys.argv[1], int(sys.argv[2]), sys.argv[3]
with open(out, "w") as f:
    for i in range(n):
        f.write(f"---\napiVersion: source.ferry.dev/v1\nkind: GitRepository\nmetadata:\n  name: s{i:04d}\n  namespace: bench\nspec:\n  url: file://{repo}\n  interval: 1h\n")
PY

log "baseline: ${WINDOW}s of the control plane alone"
BASE_A=$(snap); sleep "$WINDOW"; BASE_B=$(snap)

echo "| binary | sources | replicas | lease duration | Lease requests at the apiserver (net of the baseline) | replicas' own count (sum) |"
echo "|---|---|---|---|---|---|"
for pair in $BINS; do
  label=${pair%%=*}; bin=${pair#*=}
  cp "$bin" "$WORK/ferry-source-server-$label"
  rm -rf "$WORK/storage"
  PORTS=()
  for i in $(seq 0 $((REPLICAS - 1))); do
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    PORTS+=("$port")
    KUBECONFIG=$WORK/cluster/kubeconfig "$WORK/ferry-source-server-$label" serve --config "$WORK/sources.yaml" \
      --storage "$WORK/storage" --cache "$WORK/mirrors-$label-$i" --listen "127.0.0.1:$port" \
      --lease-namespace bench --replica-id "$label-$i" --lease-duration "$DURATION" \
      > "$WORK/$label-$i.log" 2>&1 &
    PIDS+=($!)
  done
  log "$label: waiting for $SOURCES held source Leases"
  for _ in $(seq 600); do
    held=$(k get leases -n bench -o json | python3 -c 'import json,sys; print(sum(1 for l in json.load(sys.stdin)["items"] if (l["metadata"].get("annotations") or {}).get("source.ferry.dev/source") and (l.get("spec") or {}).get("holderIdentity")))')
    [ "$held" -ge "$SOURCES" ] && break
    sleep 1
  done
  [ "$held" -ge "$SOURCES" ] || { echo "only $held of $SOURCES Leases held" >&2; exit 1; }
  sleep "$DUR_S"
  own() { local sum=0 p; for p in "${PORTS[@]}"; do sum=$(( sum + $(curl -fsS "http://127.0.0.1:$p/metrics" | awk '/^ferry_source_lease_requests_total/ {s+=$2} END {printf "%d", s}') )); done; echo "$sum"; }
  OWN_A=$(own); A=$(snap); sleep "$WINDOW"; B=$(snap); OWN_B=$(own)
  own_rate=$(python3 -c "print(f'{($OWN_B - $OWN_A) / $WINDOW:.2f}/s')")
  echo "| $label | $SOURCES | $REPLICAS | $DURATION | $(rates "$A" "$B" "$BASE_A" "$BASE_B" "$WINDOW") | $own_rate |"
  stop_pids "${PIDS[@]}"; PIDS=()
  k delete leases -n bench --all > /dev/null
done
