#!/usr/bin/env bash
# Benchmark: render every successful conformance fixture with the native engine and with
# real kustomize (`kubectl kustomize`, v5.7.1), whole processes, same machine, same run;
# print total wall times, the ratio, and the peak RSS of the largest build.
#
#   applier/kustomize/bench/run.sh [ROUNDS]      (default 3 rounds over the corpus)
#
# Measures `ferry-applier build` (release) when it builds; always also measures the small
# `ferry-kustomize` binary (same engine, same `cli::build_dir`, without the agent's
# dependencies) so a number is available even while the agent crate is being changed.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
fixtures="$here/../tests/fixtures"
kubectl="${FERRY_KUBECTL:-$repo/.tools/bin/kubectl}"
rounds="${1:-3}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$repo/target}"
[[ -x "$kubectl" ]] || { echo "kubectl not found at $kubectl (tests/scripts/install-tools.sh)" >&2; exit 1; }

cd "$repo"
cargo build --release -q -p ferry-kustomize --bin ferry-kustomize
bins=("ferry-kustomize:$CARGO_TARGET_DIR/release/ferry-kustomize")
if cargo build --release -q -p ferry-applier --bin ferry-applier 2>/tmp/ferry-bench-applier-build.log; then
  bins=("ferry-applier build:$CARGO_TARGET_DIR/release/ferry-applier" "${bins[@]}")
else
  echo "note: ferry-applier did not build (see /tmp/ferry-bench-applier-build.log); measuring ferry-kustomize only" >&2
fi

# Successful fixtures only: "name|build dir|load restrictor".
cases=()
for f in "$fixtures"/*/; do
  f="${f%/}"
  [[ -f "$f/expected.yaml" ]] || continue
  dir="$f"
  [[ -f "$f/BUILD_DIR" ]] && dir="$f/$(tr -d '[:space:]' < "$f/BUILD_DIR")"
  lr="LoadRestrictionsRootOnly"
  [[ -f "$f/LOAD_RESTRICTOR" ]] && lr="$(tr -d '[:space:]' < "$f/LOAD_RESTRICTOR")"
  cases+=("$f|$dir|$lr")
done

now() { date +%s%N; }
run_all() { # $1 = kind (kustomize | ferry-applier build | ferry-kustomize), $2 = binary
  local kind="$1" bin="$2" c f dir lr
  for ((r = 0; r < rounds; r++)); do
    for c in "${cases[@]}"; do
      IFS='|' read -r f dir lr <<< "$c"
      case "$kind" in
        kustomize) "$bin" kustomize --load-restrictor "$lr" "$dir" > /dev/null 2>&1 ;;
        "ferry-applier build") "$bin" build --root "$f" --load-restrictor "$lr" "$dir" > /dev/null 2>&1 ;;
        ferry-kustomize) "$bin" "$dir" "$f" "$lr" > /dev/null 2>&1 ;;
      esac
    done
  done
}

echo "corpus: ${#cases[@]} fixtures x $rounds rounds = $(( ${#cases[@]} * rounds )) builds per tool"
t0=$(now); run_all kustomize "$kubectl"; t1=$(now)
k_ms=$(( (t1 - t0) / 1000000 ))
printf "%-22s %8d ms total  %6.2f ms/build\n" "kubectl kustomize" "$k_ms" "$(echo "$k_ms / (${#cases[@]} * $rounds)" | bc -l)"
for b in "${bins[@]}"; do
  name="${b%%:*}"; bin="${b#*:}"
  t0=$(now); run_all "$name" "$bin"; t1=$(now)
  f_ms=$(( (t1 - t0) / 1000000 ))
  printf "%-22s %8d ms total  %6.2f ms/build  speed-up %.1fx\n" "$name" "$f_ms" \
    "$(echo "$f_ms / (${#cases[@]} * $rounds)" | bc -l)" "$(echo "$k_ms / ($f_ms + 0.001)" | bc -l)"
done

# Largest build by output size.
largest=""; size=0
for c in "${cases[@]}"; do
  IFS='|' read -r f dir lr <<< "$c"
  s=$(wc -c < "$f/expected.yaml")
  if (( s > size )); then size=$s; largest="$c"; fi
done
IFS='|' read -r f dir lr <<< "$largest"
rss() { # peak RSS in KiB of the command "$@"
  if [[ -x /usr/bin/time ]]; then
    /usr/bin/time -f '%M' "$@" 2>&1 >/dev/null | tail -1
  else
    "$@" > /dev/null 2>&1 & local pid=$! peak=0 v
    while kill -0 "$pid" 2>/dev/null; do
      v=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
      (( v > peak )) && peak=$v
      sleep 0.001
    done
    wait "$pid" || true
    echo "$peak"
  fi
}
echo "largest build: $(basename "$f") ($size bytes of YAML)"
printf "  peak RSS %-20s %6s KiB\n" "kubectl kustomize" "$(rss "$kubectl" kustomize --load-restrictor "$lr" "$dir")"
for b in "${bins[@]}"; do
  name="${b%%:*}"; bin="${b#*:}"
  if [[ "$name" == "ferry-applier build" ]]; then
    printf "  peak RSS %-20s %6s KiB\n" "$name" "$(rss "$bin" build --root "$f" --load-restrictor "$lr" "$dir")"
  else
    printf "  peak RSS %-20s %6s KiB\n" "$name" "$(rss "$bin" "$dir" "$f" "$lr")"
  fi
done
