#!/usr/bin/env bash
# Ferry vs Flux on the same real control plane, same run, same Git repository (issue 11).
#
#   applier/bench/peer.sh [configmaps] [deployments]       (default 700 + 300 = 1000 objects)
#
# Starts the real control plane (tests/scripts/real-cluster.sh), a Git smart-HTTP server on
# loopback (`git http-backend`; Flux's GitRepository takes only http(s)/ssh URLs), and both
# systems against one bare repository:
#   Ferry: ferry-source-server (GitRepository in its config file) + `ferry-applier run` for
#          namespace bench-ferry, Kustomization bench-ferry/bench;
#   Flux:  source-controller + kustomize-controller (applier/bench/flux-peer.sh build; their
#          CRDs from the module cache) with KUBECONFIG, artifact server on loopback,
#          GitRepository + Kustomization in bench-flux (targetNamespace bench-flux).
# Both Kustomizations: path ./apps, prune, interval 10m, no `wait` (no nodes: Deployments never
# become Available), so Ready means every object applied. Both sources poll every 10m: a round
# starts each system the way a webhook does — Ferry: POST /v1/sources/NS/NAME/reconcile on the
# source server; Flux: the reconcile.fluxcd.io/requestedAt annotation on the GitRepository (what
# `flux reconcile source git` and Flux's Receiver do) — and ends at the watch event of its
# Kustomization Ready=True with the commit as lastAppliedRevision.
# Rounds: 1 = a commit adding the N objects to a one-ConfigMap seed (first apply, N creates);
# 2..BENCH_ROUNDS = a commit changing an annotation of every object (N updates, no rollout).
# The two systems take turns (who goes first alternates); after each turn the controllers'
# follow-up work (ReplicaSets, Pods) finishes before the next. CPU is each system's processes'
# schedstat run time over its own turn; RSS is VmHWM (peak) and VmRSS at the end.
#
# Env: BENCH_ROUNDS (default 4), BENCH_NO_BUILD=1 / BENCH_BIN_DIR (Ferry binaries, as run.sh),
# BENCH_FLUX_BIN (default: applier/bench/flux-peer.sh build), BENCH_FLUX_KC_ARGS (extra
# kustomize-controller flags, e.g. "--kube-api-qps=500 --kube-api-burst=1000"; default none:
# Flux's defaults, QPS 50 burst 300), FERRY_KUBECTL, BENCH_KEEP=1.
set -euo pipefail
N_CM=${1:-700}
N_DEP=${2:-300}
N=$((N_CM + N_DEP))
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HELPER="python3 $ROOT/applier/bench/helper.py"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=${BENCH_BIN_DIR:-$CARGO_TARGET_DIR/release}
KUBECTL=${FERRY_KUBECTL:-$ROOT/.tools/bin/kubectl}
ROUNDS=${BENCH_ROUNDS:-4}
REAL_CLUSTER=$ROOT/tests/scripts/real-cluster.sh
NS_FERRY=bench-ferry
NS_FLUX=bench-flux

[ -x "$KUBECTL" ] || { echo "kubectl not found at $KUBECTL: run tests/scripts/install-tools.sh or set FERRY_KUBECTL" >&2; exit 1; }

WORK=$(mktemp -d /tmp/ferry-peer-bench.XXXXXX)
PIDS=()
cleanup() {
  local rc=$? i pid
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do kill "${PIDS[i]}" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
  [ -d "$WORK/cluster" ] && "$REAL_CLUSTER" stop "$WORK/cluster" >&2
  if [ -n "${BENCH_KEEP:-}" ] || [ $rc -ne 0 ]; then echo "work dir kept: $WORK" >&2; else rm -rf "$WORK"; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM
fail() {
  echo "FAILED: $*" >&2
  for f in "$WORK"/*.log; do echo "--- $f (tail)" >&2; tail -n 15 "$f" >&2; done
  exit 1
}
k() { "$KUBECTL" --kubeconfig "$WORK/kubeconfig" --cache-dir "$WORK/kube-cache" "$@"; }
wait_port_file() { for _ in $(seq 100); do [ -s "$1" ] && return; sleep 0.1; done; fail "no $1"; }
wait_http() { for _ in $(seq 300); do curl -fsS -o /dev/null "$1" 2>/dev/null && return; sleep 0.1; done; fail "$1 never answered"; }

# --- binaries --------------------------------------------------------------------------------
if [ -z "${BENCH_NO_BUILD:-}" ] && [ -z "${BENCH_BIN_DIR:-}" ]; then
  echo "building release binaries in $CARGO_TARGET_DIR …" >&2
  cargo build -q --release --manifest-path "$ROOT/Cargo.toml" -p ferry-applier -p ferry-source-server \
    --bin ferry-applier --bin ferry-source-server
fi
for b in ferry-applier ferry-source-server; do
  [ -x "$BIN/$b" ] || { echo "$BIN/$b missing (unset BENCH_NO_BUILD to build it)" >&2; exit 1; }
done
FLUX_BIN=${BENCH_FLUX_BIN:-$("$ROOT/applier/bench/flux-peer.sh" build)}
for b in source-controller kustomize-controller; do
  [ -x "$FLUX_BIN/$b" ] || { echo "$FLUX_BIN/$b missing: run applier/bench/flux-peer.sh build" >&2; exit 1; }
done
mapfile -t FLUX_CRDS < <("$ROOT/applier/bench/flux-peer.sh" crds)

# --- Git: one bare repository, served by smart HTTP ----------------------------------------
export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null
export GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@ferry.invalid
export GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@ferry.invalid
mkdir -p "$WORK/git"
git init -q --bare -b main "$WORK/git/bench.git"
git init -q -b main "$WORK/repo"
seed() { # the one-ConfigMap seed, kept in every revision
  printf 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: seed\ndata:\n  k: v\n' > "$WORK/repo/apps/seed.yaml"
  grep -q '^- seed.yaml' "$WORK/repo/apps/kustomization.yaml" || echo "- seed.yaml" >> "$WORK/repo/apps/kustomization.yaml"
}
commit() { # MESSAGE → prints the commit id
  git -C "$WORK/repo" add -A
  git -C "$WORK/repo" commit -q -m "$1"
  git -C "$WORK/repo" push -q "$WORK/git/bench.git" main
  git -C "$WORK/repo" rev-parse HEAD
}
$HELPER gen "$WORK/repo" 0 0
seed
REV=$(commit "bench: seed")
$HELPER git-http "$WORK/git" "$WORK/git-http.port" > "$WORK/git-http.log" 2>&1 &
PIDS+=($!)
wait_port_file "$WORK/git-http.port"
GIT_URL=http://127.0.0.1:$(cat "$WORK/git-http.port")/bench.git
git ls-remote "$GIT_URL" > /dev/null || fail "git smart HTTP at $GIT_URL"

# --- the real control plane, CRDs, namespaces ------------------------------------------------
echo "starting the real control plane …" >&2
"$REAL_CLUSTER" start "$WORK/cluster" > "$WORK/real-cluster.log" 2>&1 \
  || fail "real-cluster.sh start: $(tail -n 5 "$WORK/real-cluster.log")"
cp "$WORK/cluster/kubeconfig" "$WORK/kubeconfig"
k apply -f "$ROOT/deploy/crds/apply.ferry.dev_kustomizations.yaml" > /dev/null
for f in "${FLUX_CRDS[@]}"; do k apply --server-side -f "$f" > /dev/null; done
k wait --for condition=established --timeout 60s crd --all > /dev/null
for ns in $NS_FERRY $NS_FLUX flux-system; do k create namespace $ns > /dev/null; done

# --- Ferry: source server + agent ------------------------------------------------------------
SRC_PORT=$($HELPER free-port)
SRC_URL=http://127.0.0.1:$SRC_PORT
cat > "$WORK/sources.yaml" <<EOF
apiVersion: source.ferry.dev/v1
kind: GitRepository
metadata:
  name: bench
  namespace: $NS_FERRY
spec:
  url: $GIT_URL
  interval: 10m
  ref:
    branch: main
EOF
"$BIN/ferry-source-server" serve --config "$WORK/sources.yaml" --storage "$WORK/ferry-storage" \
  --cache "$WORK/ferry-mirrors" --listen "127.0.0.1:$SRC_PORT" > "$WORK/ferry-source-server.log" 2>&1 &
FERRY_SRC=$!
PIDS+=($FERRY_SRC)
DEPLOY_MALLOC_CONF=$(grep -A1 'name: MALLOC_CONF' "$ROOT/deploy/agent/deployment.yaml" | sed -n 's/.*value: *//p')
MALLOC_CONF=$DEPLOY_MALLOC_CONF "$BIN/ferry-applier" run --namespace $NS_FERRY --source-server "$SRC_URL" \
  --kubeconfig "$WORK/kubeconfig" --cache-dir "$WORK/ferry-agent-cache" --log-format json \
  --metrics-addr "127.0.0.1:$($HELPER free-port)" > "$WORK/ferry-agent.log" 2>&1 &
FERRY_AGENT=$!
PIDS+=($FERRY_AGENT)

# --- Flux: source-controller + kustomize-controller ------------------------------------------
ART_PORT=$($HELPER free-port)
SC_HEALTH=$($HELPER free-port)
KC_HEALTH=$($HELPER free-port)
mkdir -p "$WORK/flux-storage"
# The controllers take the kubeconfig from $KUBECONFIG: controller-runtime's --kubeconfig is a Go
# flag, which their pflag command line does not include.
KUBECONFIG=$WORK/kubeconfig RUNTIME_NAMESPACE=flux-system "$FLUX_BIN/source-controller" \
  --storage-path "$WORK/flux-storage" --storage-addr "127.0.0.1:$ART_PORT" \
  --storage-adv-addr "127.0.0.1:$ART_PORT" --metrics-addr "127.0.0.1:$($HELPER free-port)" \
  --health-addr "127.0.0.1:$SC_HEALTH" --log-encoding json \
  > "$WORK/flux-source-controller.log" 2>&1 &
FLUX_SC=$!
PIDS+=($FLUX_SC)
# shellcheck disable=SC2086 # BENCH_FLUX_KC_ARGS is a list of flags
KUBECONFIG=$WORK/kubeconfig RUNTIME_NAMESPACE=flux-system "$FLUX_BIN/kustomize-controller" \
  --metrics-addr "127.0.0.1:$($HELPER free-port)" --health-addr "127.0.0.1:$KC_HEALTH" \
  --log-encoding json ${BENCH_FLUX_KC_ARGS:-} > "$WORK/flux-kustomize-controller.log" 2>&1 &
FLUX_KC=$!
PIDS+=($FLUX_KC)
wait_http "http://127.0.0.1:$SC_HEALTH/healthz"
wait_http "http://127.0.0.1:$KC_HEALTH/healthz"
wait_http "$SRC_URL/healthz"

# --- the Kustomizations, Ready at the seed ---------------------------------------------------
k apply -f - > /dev/null <<EOF
apiVersion: apply.ferry.dev/v1
kind: Kustomization
metadata: {name: bench, namespace: $NS_FERRY}
spec:
  sourceRef: {kind: GitRepository, name: bench}
  path: ./apps
  interval: 10m
  timeout: 5m
  prune: true
---
apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata: {name: bench, namespace: $NS_FLUX}
spec:
  url: $GIT_URL
  interval: 10m
  ref: {branch: main}
---
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata: {name: bench, namespace: $NS_FLUX}
spec:
  sourceRef: {kind: GitRepository, name: bench}
  path: ./apps
  interval: 10m
  timeout: 5m
  prune: true
  targetNamespace: $NS_FLUX
EOF
for s in ferry flux; do
  case $s in
    ferry) g=apply.ferry.dev ns=$NS_FERRY ;;
    flux) g=kustomize.toolkit.fluxcd.io ns=$NS_FLUX ;;
  esac
  k wait --for condition=ready --timeout 120s -n "$ns" "kustomizations.$g/bench" > /dev/null \
    || fail "$s: Kustomization not Ready at the seed: $(k get -n "$ns" "kustomizations.$g/bench" -o jsonpath='{.status.conditions}')"
done
echo "both Ready at the seed $REV" >&2

# --- rounds ----------------------------------------------------------------------------------
FERRY_KS=/apis/apply.ferry.dev/v1/namespaces/$NS_FERRY/kustomizations/bench
FLUX_KS=/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/$NS_FLUX/kustomizations/bench
cpu_ns() { local t=0 p; for p in "$@"; do read -r _ n _ _ < <($HELPER proc "$p"); t=$((t + n)); done; echo $t; }
turn() { # SYSTEM ROUND → appends "ms cpu_ms" to RESULTS_<SYSTEM>_<kind>
  local sys=$1 round=$2 trigger ks pids ns c0 c1 start end
  case $sys in
    ferry) trigger="ferry:$SRC_URL/v1/sources/$NS_FERRY/bench/reconcile" ks=$FERRY_KS pids="$FERRY_SRC $FERRY_AGENT" ns=$NS_FERRY ;;
    flux) trigger="flux:/apis/source.toolkit.fluxcd.io/v1/namespaces/$NS_FLUX/gitrepositories/bench" ks=$FLUX_KS pids="$FLUX_SC $FLUX_KC" ns=$NS_FLUX ;;
  esac
  # shellcheck disable=SC2086
  c0=$(cpu_ns $pids)
  read -r start end < <($HELPER flow "$WORK/kubeconfig" "$trigger" "$ks" "$REV" 900) \
    || fail "$sys: round $round not applied"
  # shellcheck disable=SC2086
  c1=$(cpu_ns $pids)
  local ms=$(((end - start) / 1000000)) cpu=$(((c1 - c0) / 1000000))
  echo "round $round ($KIND): $sys ${ms} ms, CPU ${cpu} ms" >&2
  eval "T_${sys}_${KIND}+=($ms); C_${sys}_${KIND}+=($cpu)"
  local got
  got=$($HELPER count-objects "$WORK/kubeconfig" "$ns")
  [ "$got" -eq "$N" ] || fail "$sys applied $got objects in $ns, expected $N"
  $HELPER wait-settled "$WORK/kubeconfig" "$ns" 600 || fail "$ns never settled"
}
T_ferry_create=() T_flux_create=() C_ferry_create=() C_flux_create=()
T_ferry_update=() T_flux_update=() C_ferry_update=() C_flux_update=()
for r in $(seq 1 "$ROUNDS"); do
  if [ "$r" -eq 1 ]; then
    KIND=create
    $HELPER gen "$WORK/repo" "$N_CM" "$N_DEP"
    seed
    REV=$(commit "bench: $N objects")
  else
    KIND=update
    $HELPER gen "$WORK/repo" "$N_CM" "$N_DEP" "round-$r"
    seed
    REV=$(commit "bench: change every object (round $r)")
  fi
  if [ $((r % 2)) -eq 1 ]; then turn ferry "$r"; turn flux "$r"; else turn flux "$r"; turn ferry "$r"; fi
done

# --- report ----------------------------------------------------------------------------------
mem() { read -r _ _ rss hwm < <($HELPER proc "$1"); echo "$rss $hwm"; }
read -r SRC_RSS SRC_HWM < <(mem $FERRY_SRC)
read -r AG_RSS AG_HWM < <(mem $FERRY_AGENT)
read -r SC_RSS SC_HWM < <(mem $FLUX_SC)
read -r KC_RSS KC_HWM < <(mem $FLUX_KC)
med() { python3 -c 'import statistics,sys; v=[float(x) for x in sys.argv[1:]]; print(f"{statistics.median(v):.0f}" if v else "-")' "$@"; }
mib() { python3 -c "print(f'{$1 / 1024:.1f}')"; }
echo
echo "Ferry vs Flux: $N objects ($N_CM ConfigMaps + $N_DEP Deployments, no nodes, wait off), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "API server: $(k version -o json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["serverVersion"]["gitVersion"])'), Flux: $(cat "$FLUX_BIN/stamp")${BENCH_FLUX_KC_ARGS:+, kustomize-controller $BENCH_FLUX_KC_ARGS}"
printf '%-52s %14s %14s %s\n' "measure" "Ferry" "Flux" "rounds (Ferry | Flux)"
printf '%-52s %14s %14s %s\n' "trigger → Ready, first apply of $N objects (ms)" "${T_ferry_create[0]}" "${T_flux_create[0]}" ""
printf '%-52s %14s %14s %s\n' "  CPU of the system's processes (ms)" "${C_ferry_create[0]}" "${C_flux_create[0]}" ""
if [ "$ROUNDS" -gt 1 ]; then
  printf '%-52s %14s %14s %s\n' "trigger → Ready, $N objects changed (ms, median)" "$(med "${T_ferry_update[@]}")" "$(med "${T_flux_update[@]}")" "${T_ferry_update[*]} | ${T_flux_update[*]}"
  printf '%-52s %14s %14s %s\n' "  CPU of the system's processes (ms, median)" "$(med "${C_ferry_update[@]}")" "$(med "${C_flux_update[@]}")" "${C_ferry_update[*]} | ${C_flux_update[*]}"
fi
printf '%-52s %14s %14s\n' "peak RSS, source (MiB): ferry-source-server | source-controller" "$(mib "$SRC_HWM")" "$(mib "$SC_HWM")"
printf '%-52s %14s %14s\n' "peak RSS, apply (MiB): ferry-applier | kustomize-controller" "$(mib "$AG_HWM")" "$(mib "$KC_HWM")"
printf '%-52s %14s %14s\n' "RSS at the end, both processes (MiB)" "$(mib $((SRC_RSS + AG_RSS)))" "$(mib $((SC_RSS + KC_RSS)))"
printf '%-52s %14s %14s\n' "peak RSS, both processes (MiB, sum of peaks)" "$(mib $((SRC_HWM + AG_HWM)))" "$(mib $((SC_HWM + KC_HWM)))"
