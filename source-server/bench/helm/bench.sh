#!/usr/bin/env bash
# Helm index benchmark: a ~50 MiB index.yaml (50,000 chart versions, gen-index.py) plus one real
# chart (helm create + helm package), served by Python's http.server (Last-Modified /
# If-Modified-Since → 304). Measured in one run:
#
#   Ferry   ferry-source-server (release): time from adding the HelmRepository to its index
#           being parsed, first resolve of a range (download + pack of the chart), a cached
#           resolve, a 304 refresh, a changed-index refresh; resident memory before, peak (VmHWM)
#           and after. The index is read by the fast scanner (src/helm/scan); the run prints
#           how many parses fell back to the general YAML parser (0 expected).
#   Flux    source-controller v1.9.6 (applier/bench/flux-peer.sh build) on the real control
#           plane (tests/scripts/real-cluster.sh): HelmRepository Ready, then a HelmChart of the
#           same range Ready; peak RSS. Skipped with BENCH_NO_FLUX=1. Run with
#           --helm-index-max-size=128 MiB (BENCH_FLUX_SC_ARGS): with its 50 MiB default, the
#           HelmChart never becomes Ready, because source-controller re-encodes this 49.6 MiB
#           index as a 71 MB file and then refuses to load it (flux2#4635's failure).
#   helm    `helm repo add` + `helm search repo` (the CLI loads the whole index): peak RSS.
#
#   source-server/bench/helm/bench.sh            # build the release binary if missing, run
#   BENCH_KEEP=1 …                               # keep the work dir (logs)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
HERE=$ROOT/source-server/bench/helm
HELPER="python3 $ROOT/applier/bench/helper.py"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=${BENCH_BIN_DIR:-$CARGO_TARGET_DIR/release}
HELM=${FERRY_HELM:-$ROOT/.tools/bin/helm}
KUBECTL=${FERRY_KUBECTL:-$ROOT/.tools/bin/kubectl}
REAL_CLUSTER=$ROOT/tests/scripts/real-cluster.sh
RANGE='^1'

WORK=$(mktemp -d /tmp/ferry-helm-bench.XXXXXX)
PIDS=()
cleanup() {
  local rc=$? pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
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
fail() { echo "FAILED: $*" >&2; for f in "$WORK"/*.log; do echo "--- $f" >&2; tail -n 15 "$f" >&2; done; exit 1; }
now() { date +%s.%N; }
ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", (b - a) * 1000 }'; }
status_kib() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
wait_http() { for _ in $(seq 300); do curl -fsS -o /dev/null "$1" 2>/dev/null && return; sleep 0.1; done; fail "$1 never answered"; }

if [ ! -x "$BIN/ferry-source-server" ] && [ -z "${BENCH_NO_BUILD:-}" ]; then
  echo "building ferry-source-server (release) …" >&2
  cargo build -q --release --manifest-path "$ROOT/Cargo.toml" -p ferry-source-server --bin ferry-source-server
fi

# --- the repository: one real chart, 50,000 generated versions -------------------------------
mkdir -p "$WORK/repo" "$WORK/helm-home"
hl() { HOME=$WORK/helm-home HELM_CACHE_HOME=$WORK/helm-home/cache HELM_CONFIG_HOME=$WORK/helm-home/config \
  HELM_DATA_HOME=$WORK/helm-home/data "$HELM" "$@"; }
hl create "$WORK/bench-app" > /dev/null
sed -i 's/^version:.*/version: 1.4.2/' "$WORK/bench-app/Chart.yaml"
hl package "$WORK/bench-app" -d "$WORK/repo" > /dev/null
APP_DIGEST=$(sha256sum "$WORK/repo/bench-app-1.4.2.tgz" | cut -d' ' -f1)
python3 "$HERE/gen-index.py" "$WORK/repo/index.yaml" --app-digest "$APP_DIGEST"
INDEX_BYTES=$(stat -c %s "$WORK/repo/index.yaml")
VERSIONS=$(grep -c '^    version:' "$WORK/repo/index.yaml")
HTTP_PORT=$($HELPER free-port)
(cd "$WORK/repo" && exec python3 -m http.server --bind 127.0.0.1 "$HTTP_PORT") > "$WORK/http.log" 2>&1 &
PIDS+=($!)
REPO_URL=http://127.0.0.1:$HTTP_PORT
wait_http "$REPO_URL/index.yaml"

# --- Ferry ------------------------------------------------------------------------------------
SRC_PORT=$($HELPER free-port)
SRC=http://127.0.0.1:$SRC_PORT
: > "$WORK/sources.yaml"
"$BIN/ferry-source-server" serve --config "$WORK/sources.yaml" --storage "$WORK/ferry-storage" \
  --cache "$WORK/ferry-cache" --listen "127.0.0.1:$SRC_PORT" > "$WORK/ferry.log" 2>&1 &
FERRY=$!
PIDS+=($FERRY)
wait_http "$SRC/readyz"
F_BEFORE=$(status_kib $FERRY VmRSS)
T0=$(now)
cat > "$WORK/sources.yaml.tmp" <<EOF
apiVersion: source.ferry.dev/v1
kind: HelmRepository
metadata: {name: bench, namespace: bench}
spec: {url: "$REPO_URL", interval: 1h}
EOF
mv "$WORK/sources.yaml.tmp" "$WORK/sources.yaml"
for _ in $(seq 1200); do
  curl -fsS "$SRC/v1/helmrepositories/bench/bench" 2>/dev/null | grep -q '"artifact"' && break
  sleep 0.02
done
T_INDEX=$(now)
curl -fsS "$SRC/v1/helmrepositories/bench/bench" | grep -q '"artifact"' || fail "no index"
curl -fsS -G "$SRC/v1/helmrepositories/bench/bench/charts/bench-app" --data-urlencode "version=$RANGE" > "$WORK/resolve.json" \
  || fail "resolve: $(cat "$WORK/resolve.json")"
T_RESOLVE=$(now)
curl -fsS -G "$SRC/v1/helmrepositories/bench/bench/charts/bench-app" --data-urlencode "version=$RANGE" > /dev/null
T_CACHED=$(now)
# A range over the generated table (no download: its URLs point nowhere), timed alone.
T_TABLE0=$(now)
curl -sS -o /dev/null -G "$SRC/v1/helmrepositories/bench/bench/charts/nope" --data-urlencode "version=>=1.2 <2.0"
T_TABLE=$(now)
F_PEAK=$(status_kib $FERRY VmHWM)
F_AFTER=$(status_kib $FERRY VmRSS)
NM_BEFORE=$(curl -fsS "$SRC/metrics" | awk '/helm_index_fetches_total.*not_modified/ { print $2 }')
T_304=$(now)
curl -fsS -X POST "$SRC/v1/helmrepositories/bench/bench/reconcile" > /dev/null
for _ in $(seq 500); do
  NM=$(curl -fsS "$SRC/metrics" | awk '/helm_index_fetches_total.*not_modified/ { print $2 }')
  [ "${NM:-0}" != "${NM_BEFORE:-0}" ] && break
  sleep 0.01
done
T_304_DONE=$(now)
F_PEAK2=$(status_kib $FERRY VmHWM)
# A changed index (a new `generated` time, a later Last-Modified): fetched and parsed again while
# the old table still serves.
REV_BEFORE=$(curl -fsS "$SRC/v1/helmrepositories/bench/bench" | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"]["artifact"]["revision"])')
sed -i 's/^generated: .*/generated: "2025-10-02T00:00:00Z"/' "$WORK/repo/index.yaml"
touch -d "@$(( $(date +%s) + 120 ))" "$WORK/repo/index.yaml"
T_CHANGED=$(now)
curl -fsS -X POST "$SRC/v1/helmrepositories/bench/bench/reconcile" > /dev/null
for _ in $(seq 1200); do
  REV=$(curl -fsS "$SRC/v1/helmrepositories/bench/bench" | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"]["artifact"]["revision"])')
  [ "$REV" != "$REV_BEFORE" ] && break
  sleep 0.02
done
T_CHANGED_DONE=$(now)
[ "$REV" != "$REV_BEFORE" ] || fail "the changed index was never parsed"
F_PEAK3=$(status_kib $FERRY VmHWM)
PARSED=$(curl -fsS "$SRC/metrics" | awk '/helm_index_fetches_total.*parsed/ { print $2 }')
GENERAL=$(curl -fsS "$SRC/metrics" | awk '/helm_index_general_parses_total/ { print $2 }')

# --- helm CLI ---------------------------------------------------------------------------------
hl repo add bench "$REPO_URL" > /dev/null
/usr/bin/time -f '%M %e' -o "$WORK/helm-time" \
  env HOME=$WORK/helm-home HELM_CACHE_HOME=$WORK/helm-home/cache HELM_CONFIG_HOME=$WORK/helm-home/config \
  HELM_DATA_HOME=$WORK/helm-home/data "$HELM" search repo bench/bench-app --version "$RANGE" > "$WORK/helm-search.log"
read -r HELM_KIB HELM_S < "$WORK/helm-time"

# --- Flux source-controller -------------------------------------------------------------------
SC_INDEX=- SC_CHART=- SC_BEFORE=- SC_PEAK=-
if [ -z "${BENCH_NO_FLUX:-}" ]; then
  FLUX_BIN=${BENCH_FLUX_BIN:-$("$ROOT/applier/bench/flux-peer.sh" build)}
  mapfile -t FLUX_CRDS < <("$ROOT/applier/bench/flux-peer.sh" crds)
  echo "starting the real control plane …" >&2
  "$REAL_CLUSTER" start "$WORK/cluster" > "$WORK/real-cluster.log" 2>&1 || fail "real-cluster.sh start"
  k() { "$KUBECTL" --kubeconfig "$WORK/cluster/kubeconfig" --cache-dir "$WORK/kube-cache" "$@"; }
  for f in "${FLUX_CRDS[@]}"; do k apply --server-side -f "$f" > /dev/null; done
  k wait --for condition=established --timeout 60s crd --all > /dev/null
  k create namespace bench > /dev/null
  k create namespace flux-system > /dev/null
  ART_PORT=$($HELPER free-port)
  SC_HEALTH=$($HELPER free-port)
  mkdir -p "$WORK/flux-storage"
  KUBECONFIG=$WORK/cluster/kubeconfig RUNTIME_NAMESPACE=flux-system "$FLUX_BIN/source-controller" \
    --storage-path "$WORK/flux-storage" --storage-addr "127.0.0.1:$ART_PORT" \
    --storage-adv-addr "127.0.0.1:$ART_PORT" --metrics-addr "127.0.0.1:$($HELPER free-port)" \
    --health-addr "127.0.0.1:$SC_HEALTH" --log-encoding json \
    ${BENCH_FLUX_SC_ARGS---helm-index-max-size=134217728} > "$WORK/flux-sc.log" 2>&1 &
  SC=$!
  PIDS+=($SC)
  wait_http "http://127.0.0.1:$SC_HEALTH/healthz"
  sleep 2
  SC_BEFORE=$(status_kib $SC VmRSS)
  T0F=$(now)
  k apply -f - > /dev/null <<EOF
apiVersion: source.toolkit.fluxcd.io/v1
kind: HelmRepository
metadata: {name: bench, namespace: bench}
spec: {url: "$REPO_URL", interval: 1h}
EOF
  k -n bench wait --for=condition=Ready --timeout=300s helmrepository/bench > /dev/null || fail "Flux HelmRepository not Ready"
  T_SC_INDEX=$(now)
  k apply -f - > /dev/null <<EOF
apiVersion: source.toolkit.fluxcd.io/v1
kind: HelmChart
metadata: {name: bench-app, namespace: bench}
spec:
  chart: bench-app
  version: "$RANGE"
  interval: 1h
  sourceRef: {kind: HelmRepository, name: bench}
EOF
  k -n bench wait --for=condition=Ready --timeout=300s helmchart/bench-app > /dev/null || fail "Flux HelmChart not Ready"
  T_SC_CHART=$(now)
  SC_INDEX=$(ms "$T0F" "$T_SC_INDEX")
  SC_CHART=$(ms "$T_SC_INDEX" "$T_SC_CHART")
  SC_PEAK=$(status_kib $SC VmHWM)
fi

echo
echo "Helm index benchmark: $(mib $((INDEX_BYTES / 1024))) MiB index, $VERSIONS chart versions, $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "Ferry resolved: $(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["chart"], d["version"], d["revision"])' "$WORK/resolve.json")"
printf '%-58s %12s %12s %12s\n' "measure" "Ferry" "Flux sc" "helm CLI"
printf '%-58s %12s %12s %12s\n' "config → index parsed / HelmRepository Ready (ms)" "$(ms "$T0" "$T_INDEX")" "$SC_INDEX" "-"
printf '%-58s %12s %12s %12s\n' "first resolve of $RANGE, chart downloaded + packed (ms)" "$(ms "$T_INDEX" "$T_RESOLVE")" "$SC_CHART" "$(awk -v s="$HELM_S" 'BEGIN { printf "%.0f", s * 1000 }')"
printf '%-58s %12s %12s %12s\n' "cached resolve (ms)" "$(ms "$T_RESOLVE" "$T_CACHED")" "-" "-"
printf '%-58s %12s %12s %12s\n' "resolve over the table, no match (ms)" "$(ms "$T_TABLE0" "$T_TABLE")" "-" "-"
printf '%-58s %12s %12s %12s\n' "unchanged index: refresh → 304 counted (ms)" "$(ms "$T_304" "$T_304_DONE")" "-" "-"
printf '%-58s %12s %12s %12s\n' "RSS before (MiB)" "$(mib "$F_BEFORE")" "$( [ "$SC_BEFORE" = - ] && echo - || mib "$SC_BEFORE")" "-"
printf '%-58s %12s %12s %12s\n' "peak RSS (VmHWM, MiB)" "$(mib "$F_PEAK")" "$( [ "$SC_PEAK" = - ] && echo - || mib "$SC_PEAK")" "$(mib "$HELM_KIB")"
printf '%-58s %12s %12s %12s\n' "peak RSS growth (MiB)" "$(mib $((F_PEAK - F_BEFORE)))" "$( [ "$SC_PEAK" = - ] && echo - || mib $((SC_PEAK - SC_BEFORE)))" "-"
printf '%-58s %12s %12s %12s\n' "RSS after (MiB)" "$(mib "$F_AFTER")" "-" "-"
printf '%-58s %12s %12s %12s\n' "peak RSS after the 304 refresh (MiB)" "$(mib "$F_PEAK2")" "-" "-"
printf '%-58s %12s %12s %12s\n' "changed index: refresh → new revision parsed (ms)" "$(ms "$T_CHANGED" "$T_CHANGED_DONE")" "-" "-"
printf '%-58s %12s %12s %12s\n' "peak RSS after the changed-index refresh (MiB)" "$(mib "$F_PEAK3")" "-" "-"
printf '%-58s %12s %12s %12s\n' "peak RSS growth, whole run (MiB)" "$(mib $((F_PEAK3 - F_BEFORE)))" "-" "-"
echo "index parses: $PARSED (the 304 refresh parsed nothing), by the general YAML parser: ${GENERAL:-0} (the fast scanner read the others)"
