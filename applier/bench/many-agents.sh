#!/usr/bin/env bash
# Many agents on one API server, and Flux on the same one, same run (issue 18).
#
#   applier/bench/many-agents.sh [N]                 (default N=100 tenant namespaces)
#
# On the real control plane (tests/scripts/real-cluster.sh), one Git repository of
# $BENCH_OBJECTS ConfigMaps served by Git smart HTTP (helper.py git-http), then in turn:
#   ferry: one ferry-source-server serving one GitRepository (bench-src/bench), and per tenant
#          namespace t-0001..t-N one `ferry-applier run --namespace t-NNNN` process and one
#          Kustomization (sourceRef bench-src/bench, targetNamespace its own namespace);
#   flux:  source-controller + kustomize-controller (applier/bench/flux-peer.sh), one
#          GitRepository flux-system/bench and the same N Kustomizations in the same namespaces.
# Both: path ./apps, prune, interval $BENCH_INTERVAL, no wait; the source polls every 10m.
# Each system is alone on the apiserver while measured: the other's processes are stopped and
# the tenant namespaces deleted (and gone) before the next one starts. Once all N are Ready the
# script waits one more interval (start-up done), then measures an idle window of
# $BENCH_WINDOW seconds: the kube-apiserver's apiserver_request_total deltas (by verb and
# resource, net of a baseline window taken with the control plane alone), its open watches,
# every process's CPU (utime+stime) and memory, and the reconciles counted by each system's
# own metrics. The Markdown report goes to stdout (and $WORK/report.md).
#
# Env: BENCH_WINDOW (s, default 300), BENCH_INTERVAL (default 1m), BENCH_OBJECTS (default 50),
# BENCH_BASELINE (s, default 120), BENCH_SYSTEMS (default "ferry flux"; order = run order),
# BENCH_BIN_DIR (Ferry binaries; default target/release, copied into the work dir so a rebuild
# cannot swap them mid-run), BENCH_FLUX_BIN (default: flux-peer.sh build), BENCH_FLUX_KC_ARGS,
# BENCH_START_BATCH (agents started at once, default 10), FERRY_KUBECTL, BENCH_KEEP=1.
set -euo pipefail
N=${1:-100}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HELPER="python3 $ROOT/applier/bench/helper.py"
IDLE="python3 $ROOT/applier/bench/idle.py"
BIN_SRC=${BENCH_BIN_DIR:-${CARGO_TARGET_DIR:-$ROOT/target}/release}
KUBECTL=${FERRY_KUBECTL:-$ROOT/.tools/bin/kubectl}
[ -x "$KUBECTL" ] || KUBECTL=$(command -v kubectl) || { echo "no kubectl: run tests/scripts/install-tools.sh or set FERRY_KUBECTL" >&2; exit 1; }
WINDOW=${BENCH_WINDOW:-300}
INTERVAL=${BENCH_INTERVAL:-1m}
OBJECTS=${BENCH_OBJECTS:-50}
BASELINE=${BENCH_BASELINE:-120}
SYSTEMS=${BENCH_SYSTEMS:-ferry flux}
BATCH=${BENCH_START_BATCH:-10}
REAL_CLUSTER=$ROOT/tests/scripts/real-cluster.sh
INTERVAL_S=$(python3 -c "import re,sys; v=sys.argv[1]; print(sum(int(n)*{'h':3600,'m':60,'s':1}[u] for n,u in re.findall(r'(\d+)([hms])',v)))" "$INTERVAL")
[ "$INTERVAL_S" -gt 0 ] || { echo "BENCH_INTERVAL $INTERVAL: want e.g. 1m, 90s, 1h" >&2; exit 2; }
nsname() { printf 't-%04d\n' "$1"; }

WORK=$(mktemp -d /tmp/ferry-many-agents.XXXXXX)
PIDS=()
stop_pids() { # PID... : TERM, a moment, then KILL
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
  rm -rf "$WORK/bin" "$WORK"/cache
  if [ -n "${BENCH_KEEP:-}" ] || [ $rc -ne 0 ]; then echo "work dir kept: $WORK" >&2; else rm -rf "$WORK"; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM
fail() {
  echo "FAILED: $*" >&2
  for f in "$WORK"/*.log; do [ -f "$f" ] && { echo "--- $f (tail)" >&2; tail -n 10 "$f" >&2; }; done
  exit 1
}
log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }
k() { "$KUBECTL" --kubeconfig "$WORK/kubeconfig" --cache-dir "$WORK/kube-cache" "$@"; }
wait_http() { for _ in $(seq 600); do curl -fsS -o /dev/null "$1" 2>/dev/null && return; sleep 0.1; done; fail "$1 never answered"; }

# --- binaries --------------------------------------------------------------------------------
mkdir -p "$WORK/bin"
for b in ferry-applier ferry-source-server; do
  [ -x "$BIN_SRC/$b" ] || { echo "$BIN_SRC/$b missing (cargo build --release, or BENCH_BIN_DIR)" >&2; exit 1; }
  cp "$BIN_SRC/$b" "$WORK/bin/$b"
done
BIN=$WORK/bin
FLUX_BIN=${BENCH_FLUX_BIN:-$("$ROOT/applier/bench/flux-peer.sh" build)}
mapfile -t FLUX_CRDS < <("$ROOT/applier/bench/flux-peer.sh" crds)

# --- Git: one repository of $OBJECTS ConfigMaps ----------------------------------------------
export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null
export GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@ferry.invalid
export GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@ferry.invalid
mkdir -p "$WORK/git"
git init -q --bare -b main "$WORK/git/bench.git"
git init -q -b main "$WORK/repo"
$HELPER gen "$WORK/repo" "$OBJECTS" 0
git -C "$WORK/repo" add -A && git -C "$WORK/repo" commit -q -m "bench: $OBJECTS ConfigMaps"
git -C "$WORK/repo" push -q "$WORK/git/bench.git" main
$HELPER git-http "$WORK/git" "$WORK/git-http.port" > "$WORK/git-http.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do [ -s "$WORK/git-http.port" ] && break; sleep 0.1; done
GIT_URL=http://127.0.0.1:$(cat "$WORK/git-http.port")/bench.git
git ls-remote "$GIT_URL" > /dev/null || fail "git smart HTTP at $GIT_URL"

# --- the real control plane ------------------------------------------------------------------
log "starting the real control plane …"
"$REAL_CLUSTER" start "$WORK/cluster" > "$WORK/real-cluster.log" 2>&1 \
  || fail "real-cluster.sh start: $(tail -n 5 "$WORK/real-cluster.log")"
cp "$WORK/cluster/kubeconfig" "$WORK/kubeconfig"
k apply -k "$ROOT/deploy/crds" > /dev/null
for f in "${FLUX_CRDS[@]}"; do k apply --server-side -f "$f" > /dev/null; done
k wait --for condition=established --timeout 60s crd --all > /dev/null
k create namespace flux-system > /dev/null
for p in apiserver etcd controller-manager; do cp "$WORK/cluster/$p.pid" "$WORK/$p.pids"; done
CP_ROLES=(apiserver="$WORK/apiserver.pids" etcd="$WORK/etcd.pids" kcm="$WORK/controller-manager.pids")

log "baseline: the control plane alone for ${BASELINE}s"
sleep 30 # the CRDs' discovery and the controller manager's start-up settle first
$IDLE snap "$WORK/kubeconfig" "$WORK/base-a.json" "${CP_ROLES[@]}"
sleep "$BASELINE"
$IDLE snap "$WORK/kubeconfig" "$WORK/base-b.json" "${CP_ROLES[@]}"

tenants() { # YAML of the N namespaces
  local i
  for i in $(seq 1 "$N"); do printf 'apiVersion: v1\nkind: Namespace\nmetadata: {name: %s}\n---\n' "$(nsname "$i")"; done
}
kustomizations() { # GROUP SOURCE_NAMESPACE → YAML of the N Kustomizations
  local i ns
  for i in $(seq 1 "$N"); do
    ns=$(nsname "$i")
    cat <<EOF
apiVersion: $1/v1
kind: Kustomization
metadata: {name: bench, namespace: $ns}
spec:
  sourceRef: {kind: GitRepository, name: bench, namespace: $2}
  path: ./apps
  interval: $INTERVAL
  timeout: 5m
  prune: true
  targetNamespace: $ns
---
EOF
  done
}
drop_tenants() {
  log "deleting the $N tenant namespaces …"
  k delete namespace $(for i in $(seq 1 "$N"); do nsname "$i"; done) --wait=false > /dev/null
  for _ in $(seq 600); do
    [ "$(k get namespaces -o name | grep -c '^namespace/t-')" -eq 0 ] && return
    sleep 2
  done
  fail "tenant namespaces still there after 20 min"
}

measure() { # SYSTEM ROLE=PIDFILE... [--ferry-ports F | --flux-metrics URL]
  local sys=$1
  shift
  log "$sys: all $N Ready; one more interval (${INTERVAL_S}s) before measuring"
  sleep "$INTERVAL_S"
  log "$sys: measuring ${WINDOW}s at idle"
  $IDLE snap "$WORK/kubeconfig" "$WORK/$sys-a.json" "${CP_ROLES[@]}" "$@"
  sleep "$WINDOW"
  $IDLE snap "$WORK/kubeconfig" "$WORK/$sys-b.json" "${CP_ROLES[@]}" "$@"
  $IDLE wait-ready "$WORK/kubeconfig" "$GROUP" "$N" 60 > /dev/null || fail "$sys: not all Ready after the window"
  local api_port
  api_port=$(sed -n 's|.*server: https://127.0.0.1:\([0-9]*\).*|\1|p' "$WORK/kubeconfig")
  echo "$sys: TCP connections open to the kube-apiserver at the end of the window, by client:" \
    "$(ss -Htnp state established "( dport = :$api_port )" | grep -o 'users:(("[^"]*"' | cut -d'"' -f2 |
      sort | uniq -c | awk '{printf "%s %s; ", $2, $1}')" >> "$WORK/notes.txt"
  free -m > "$WORK/$sys-free.txt"
}

run_ferry() {
  GROUP=apply.ferry.dev
  local port i ns
  port=$($HELPER free-port)
  printf 'apiVersion: v1\nkind: Namespace\nmetadata: {name: bench-src}\n' | k apply -f - > /dev/null
  cat > "$WORK/sources.yaml" <<EOF
apiVersion: source.ferry.dev/v1
kind: GitRepository
metadata: {name: bench, namespace: bench-src}
spec:
  url: $GIT_URL
  interval: 10m
  ref: {branch: main}
EOF
  "$BIN/ferry-source-server" serve --config "$WORK/sources.yaml" --storage "$WORK/ferry-storage" \
    --cache "$WORK/ferry-mirrors" --listen "127.0.0.1:$port" --log-format json \
    > "$WORK/ferry-source-server.log" 2>&1 &
  local src=$!
  PIDS+=($src)
  echo $src > "$WORK/source-server.pids"
  SRC_URL=http://127.0.0.1:$port
  local src_port=$port
  wait_http "$SRC_URL/healthz"
  $HELPER wait-artifact "$SRC_URL" bench-src bench 120 > /dev/null || fail "no artifact"
  tenants | k apply -f - > /dev/null
  kustomizations apply.ferry.dev bench-src | k apply -f - > /dev/null
  log "ferry: starting $N agents ($BATCH at a time) …"
  local malloc
  malloc=$(grep -A1 'name: MALLOC_CONF' "$ROOT/deploy/agent/deployment.yaml" | sed -n 's/.*value: *//p')
  : > "$WORK/agents.pids"
  : > "$WORK/agents.ports"
  mkdir -p "$WORK/logs" "$WORK/cache"
  for i in $(seq 1 "$N"); do
    ns=$(nsname "$i")
    port=$($HELPER free-port)
    MALLOC_CONF=$malloc "$BIN/ferry-applier" run --namespace "$ns" --source-server "$SRC_URL" \
      --kubeconfig "$WORK/kubeconfig" --cache-dir "$WORK/cache/$ns" --log-format json \
      --metrics-addr "127.0.0.1:$port" > "$WORK/logs/$ns.log" 2>&1 &
    PIDS+=($!)
    echo $! >> "$WORK/agents.pids"
    echo "$port" >> "$WORK/agents.ports"
    [ $((i % BATCH)) -ne 0 ] || $IDLE wait-ready "$WORK/kubeconfig" "$GROUP" "$i" 600 > /dev/null \
      || fail "ferry: agents up to $ns not Ready"
  done
  $IDLE wait-ready "$WORK/kubeconfig" "$GROUP" "$N" 900 > /dev/null || fail "ferry: not all $N Ready"
  measure ferry agents="$WORK/agents.pids" source-server="$WORK/source-server.pids" --ferry-ports "$WORK/agents.ports"
  echo "ferry: connections open to the source server at the end of the window (event streams and" \
    "pooled connections of $N agents): $(ss -Htn state established "( sport = :$src_port )" | wc -l)" >> "$WORK/notes.txt"
  log "ferry: stopping the agents and the source server"
  # shellcheck disable=SC2046
  stop_pids $(cat "$WORK/agents.pids") "$src"
  rm -rf "$WORK/cache"
  k delete kustomizations.apply.ferry.dev --all -A --wait=false > /dev/null
  drop_tenants
}

run_flux() {
  GROUP=kustomize.toolkit.fluxcd.io
  local art sc_h kc_h kc_m
  art=$($HELPER free-port) sc_h=$($HELPER free-port) kc_h=$($HELPER free-port) kc_m=$($HELPER free-port)
  mkdir -p "$WORK/flux-storage"
  # The kubeconfig comes from $KUBECONFIG (see peer.sh).
  KUBECONFIG=$WORK/kubeconfig RUNTIME_NAMESPACE=flux-system "$FLUX_BIN/source-controller" \
    --storage-path "$WORK/flux-storage" --storage-addr "127.0.0.1:$art" \
    --storage-adv-addr "127.0.0.1:$art" --metrics-addr "127.0.0.1:$($HELPER free-port)" \
    --health-addr "127.0.0.1:$sc_h" --log-encoding json > "$WORK/flux-source-controller.log" 2>&1 &
  local sc=$!
  PIDS+=($sc)
  # shellcheck disable=SC2086 # BENCH_FLUX_KC_ARGS is a list of flags
  KUBECONFIG=$WORK/kubeconfig RUNTIME_NAMESPACE=flux-system "$FLUX_BIN/kustomize-controller" \
    --metrics-addr "127.0.0.1:$kc_m" --health-addr "127.0.0.1:$kc_h" \
    --log-encoding json ${BENCH_FLUX_KC_ARGS:-} > "$WORK/flux-kustomize-controller.log" 2>&1 &
  local kc=$!
  PIDS+=($kc)
  echo $sc > "$WORK/flux-sc.pids"
  echo $kc > "$WORK/flux-kc.pids"
  wait_http "http://127.0.0.1:$sc_h/healthz"
  wait_http "http://127.0.0.1:$kc_h/healthz"
  k apply -f - > /dev/null <<EOF
apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata: {name: bench, namespace: flux-system}
spec:
  url: $GIT_URL
  interval: 10m
  ref: {branch: main}
EOF
  tenants | k apply -f - > /dev/null
  log "flux: $N Kustomizations …"
  kustomizations kustomize.toolkit.fluxcd.io flux-system | k apply -f - > /dev/null
  $IDLE wait-ready "$WORK/kubeconfig" "$GROUP" "$N" 1800 > /dev/null || fail "flux: not all $N Ready"
  measure flux flux-kc="$WORK/flux-kc.pids" flux-sc="$WORK/flux-sc.pids" --flux-metrics "http://127.0.0.1:$kc_m/metrics"
  log "flux: stopping the controllers"
  stop_pids "$kc" "$sc"
  k delete kustomizations.kustomize.toolkit.fluxcd.io --all -A --wait=false > /dev/null
  # Flux's finalizers: nobody is left to remove them, and its prune is not what is measured.
  for ns in $(k get kustomizations.kustomize.toolkit.fluxcd.io -A -o jsonpath='{range .items[*]}{.metadata.namespace}{"\n"}{end}'); do
    k patch -n "$ns" kustomizations.kustomize.toolkit.fluxcd.io bench --type merge -p '{"metadata":{"finalizers":null}}' > /dev/null
  done
  drop_tenants
}

REPORT_ARGS=()
for s in $SYSTEMS; do
  case $s in
    ferry) run_ferry ;;
    flux) run_flux ;;
    *) fail "unknown system $s (ferry, flux)" ;;
  esac
  REPORT_ARGS+=("$s" "$WORK/$s-a.json" "$WORK/$s-b.json")
done

{
  echo "N=$N tenant namespaces × $OBJECTS ConfigMaps, $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "API server $(k version -o json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["serverVersion"]["gitVersion"])'), Flux $(cat "$FLUX_BIN/stamp" 2>/dev/null)${BENCH_FLUX_KC_ARGS:+, kustomize-controller $BENCH_FLUX_KC_ARGS}, Ferry binaries from $BIN_SRC"
  echo
  $IDLE report --tenants "$N" "${WINDOW}s" "$INTERVAL_S" "$WORK/base-a.json" "$WORK/base-b.json" "${REPORT_ARGS[@]}"
  [ ! -f "$WORK/notes.txt" ] || { echo; cat "$WORK/notes.txt"; }
} | tee "$WORK/report.md"
