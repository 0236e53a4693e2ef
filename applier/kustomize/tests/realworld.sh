#!/usr/bin/env bash
# Real-world conformance and speed check: builds every kustomization found under the given
# directories with real kustomize (`kubectl kustomize`, v5.7.1) and with `ferry-applier build`,
# one process per overlay for each tool, and compares the outputs.
#
#   applier/kustomize/tests/realworld.sh [-r ROUNDS] DIR...
#
# Each DIR is a build root (`--root` for ferry; e.g. /tmp/corpus holding one checkout per
# repository); the first path component under it names the repository in the table.
# Per overlay it prints one of
#   bytes     identical bytes
#   objects   identical objects (same documents in the same order), different text
#   DIFFERS   different objects
#   FAILS     kubectl builds it, ferry fails
#   excluded  kubectl cannot build it offline (remote base, helm chart) — not counted
#   both-fail kubectl fails for another reason and ferry fails too — not counted
#   FERRY-OK  kubectl fails (not for network) but ferry succeeds — not counted as built,
#             listed because it is a disagreement
# then a per-repository table and a summary line. Timing is a separate pass (ROUNDS times,
# default 1): process by process over the whole corpus, output to /dev/null, no wrapper
# (`-r 0`: the comparison pass's own times instead); peak RSS comes from the comparison
# pass (`/usr/bin/time -f %M`).
#
# Environment: FERRY_KUBECTL (default <repo>/.tools/bin/kubectl), FERRY_APPLIER (default
# <repo>/target/release/ferry-applier), FERRY_REALWORLD_OUT (where outputs are kept; default a
# fresh temporary directory, printed at the end), FERRY_REALWORLD_REUSE=1 (keep kubectl's
# outputs already in FERRY_REALWORLD_OUT instead of running it again in the comparison pass:
# for quick re-runs while fixing the engine; the timing pass still runs both).
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
kubectl="${FERRY_KUBECTL:-$repo/.tools/bin/kubectl}"
ferry="${FERRY_APPLIER:-$repo/target/release/ferry-applier}"
rounds=1
if [[ "${1:-}" == "-r" ]]; then rounds="$2"; shift 2; fi
[[ $# -ge 1 ]] || { echo "usage: $0 [-r ROUNDS] DIR..." >&2; exit 2; }
[[ -x "$kubectl" ]] || { echo "kubectl not found at $kubectl (tests/scripts/install-tools.sh)" >&2; exit 1; }
[[ -x "$ferry" ]] || { echo "ferry-applier not found at $ferry (cargo build --release -p ferry-applier)" >&2; exit 1; }
[[ -x /usr/bin/time ]] || { echo "/usr/bin/time missing (apt-get install time)" >&2; exit 1; }
out="${FERRY_REALWORLD_OUT:-$(mktemp -d /tmp/ferry-realworld.XXXXXX)}"
mkdir -p "$out"

# Overlays: "root|dir|repository"; outputs are kept under a name derived from the path.
cases=()
slugs=()
for root in "$@"; do
  root="$(cd "$root" && pwd)"
  while IFS= read -r k; do
    d="$(dirname "$k")"
    rel="${d#"$root"/}"
    cases+=("$root|$d|${rel%%/*}")
    slugs+=("$(basename "$root")__${rel//\//__}")
  done < <(find "$root" \( -name .git -prune \) -o -type f \
             \( -name kustomization.yaml -o -name kustomization.yml -o -name Kustomization \) \
             -print | LC_ALL=C sort)
done
echo "overlays found: ${#cases[@]} (outputs in $out)"

# A failure is "needs the network" when kustomize tried to fetch something.
network_re='(no such host|dial tcp|git (clone|fetch)|failed to run .*git|helm|HelmChart|http(s)?://[^ ]*(ref=|\.git|github\.com)|github\.com/|network is unreachable|cloning|ssh:|timeout|unable to fetch|remote)'

now_ns() { local t=${EPOCHREALTIME/./}; echo $((10#$t * 1000)); }

# Pass 1: outputs, exit codes, peak RSS.
for i in "${!cases[@]}"; do
  IFS='|' read -r root d _ <<< "${cases[$i]}"
  o="$out/${slugs[$i]}"
  if [[ "${FERRY_REALWORLD_REUSE:-}" != 1 || ! -f "$o.k.rc" ]]; then
    t0=$(now_ns)
    /usr/bin/time -f %M -o "$o.k.rss" "$kubectl" kustomize "$d" > "$o.k.yaml" 2> "$o.k.err"
    echo $? > "$o.k.rc"
    echo $(( $(now_ns) - t0 )) > "$o.k.ns"
  fi
  t0=$(now_ns)
  /usr/bin/time -f %M -o "$o.f.rss" "$ferry" build --root "$root" "$d" > "$o.f.yaml" 2> "$o.f.err"
  echo $? > "$o.f.rc"
  echo $(( $(now_ns) - t0 )) > "$o.f.ns"
done

# Object comparison for the text-different pairs, in one interpreter.
printf '%s\n' "${slugs[@]}" > "$out/slugs.txt"
python3 - "$out" > "$out/objects.txt" <<'PY'
import os, sys, yaml
out = sys.argv[1]
slugs = open(f"{out}/slugs.txt").read().split()
def load(p):
    try:
        Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        with open(p, "rb") as f:
            return [d for d in yaml.load_all(f, Loader=Loader) if d is not None]
    except Exception as e:
        return ("unparsable", str(e))
for i, slug in enumerate(slugs):
    o = f"{out}/{slug}"
    k, f = f"{o}.k.yaml", f"{o}.f.yaml"
    if open(f"{o}.k.rc").read().strip() != "0" or open(f"{o}.f.rc").read().strip() != "0":
        continue
    with open(k, "rb") as a, open(f, "rb") as b:
        if a.read() == b.read():
            print(i, "bytes"); continue
    print(i, "objects" if load(k) == load(f) else "differs")
PY
declare -A cmp
while read -r i s; do cmp[$i]=$s; done < "$out/objects.txt"

# Pass 2: timing, process by process, no wrapper. With -r 0, the times of pass 1 are used
# instead (each process then also pays for the /usr/bin/time wrapper, about a millisecond:
# that makes the speed-up an underestimate).
declare -A tk tf
if [[ "$rounds" == 0 ]]; then
  for i in "${!cases[@]}"; do
    o="$out/${slugs[$i]}"
    tk[$i]=$(cat "$o.k.ns" 2>/dev/null || echo 0); tf[$i]=$(cat "$o.f.ns" 2>/dev/null || echo 0)
  done
fi
div=$(( rounds > 0 ? rounds : 1 ))
for ((r = 0; r < rounds; r++)); do
  for i in "${!cases[@]}"; do
    IFS='|' read -r root d _ <<< "${cases[$i]}"
    [[ "$(< "$out/${slugs[$i]}.k.rc")" == 0 ]] || continue
    # Timestamps without a command substitution: `$(…)` forks a subshell, about half a
    # millisecond that would count against both tools.
    t0=${EPOCHREALTIME/./}; "$kubectl" kustomize "$d" > /dev/null 2>&1; t1=${EPOCHREALTIME/./}
    "$ferry" build --root "$root" "$d" > /dev/null 2>&1; t2=${EPOCHREALTIME/./}
    tk[$i]=$(( ${tk[$i]:-0} + (10#$t1 - 10#$t0) * 1000 )); tf[$i]=$(( ${tf[$i]:-0} + (10#$t2 - 10#$t1) * 1000 ))
  done
done

declare -A r_n r_bytes r_obj r_k r_f r_rss r_rssk r_excl r_over
n=0; nb=0; no=0; nexcl=0; nboth=0; nfok=0; tot_k=0; tot_f=0; over=0
printf "%-9s %8s %8s %8s %8s %9s  %s\n" status ferry-ms kubectl-ms rss-KiB krss-KiB out-KiB overlay
for i in "${!cases[@]}"; do
  IFS='|' read -r root d rp <<< "${cases[$i]}"
  o="$out/${slugs[$i]}"
  krc=$(< "$o.k.rc"); frc=$(< "$o.f.rc")
  rel="${d#"$root"/}"
  if [[ "$krc" != 0 ]]; then
    if grep -Eqi "$network_re" "$o.k.err"; then s=excluded; nexcl=$((nexcl + 1)); r_excl[$rp]=$(( ${r_excl[$rp]:-0} + 1 ))
    elif [[ "$frc" != 0 ]]; then s=both-fail; nboth=$((nboth + 1))
    else s=FERRY-OK; nfok=$((nfok + 1)); fi
    printf "%-9s %8s %8s %8s %8s %9s  %s\n" "$s" - - - - - "$rel"
    continue
  fi
  n=$((n + 1)); r_n[$rp]=$(( ${r_n[$rp]:-0} + 1 ))
  if [[ "$frc" != 0 ]]; then s=FAILS
  else
    case "${cmp[$i]}" in
      bytes) s=bytes; nb=$((nb + 1)); no=$((no + 1)); r_bytes[$rp]=$(( ${r_bytes[$rp]:-0} + 1 )); r_obj[$rp]=$(( ${r_obj[$rp]:-0} + 1 )) ;;
      objects) s=objects; no=$((no + 1)); r_obj[$rp]=$(( ${r_obj[$rp]:-0} + 1 )) ;;
      *) s=DIFFERS ;;
    esac
  fi
  fr=$(tail -1 "$o.f.rss"); kr=$(tail -1 "$o.k.rss"); size=$(wc -c < "$o.k.yaml")
  # Memory bound: peak RSS <= 3 x output + 10 MiB.
  if [[ "$frc" == 0 ]] && (( fr * 1024 > 3 * size + 10 * 1048576 )); then
    over=$((over + 1)); r_over[$rp]=$(( ${r_over[$rp]:-0} + 1 )); s="$s,RSS!"
  fi
  tot_k=$((tot_k + ${tk[$i]:-0})); tot_f=$((tot_f + ${tf[$i]:-0}))
  r_k[$rp]=$(( ${r_k[$rp]:-0} + ${tk[$i]:-0} )); r_f[$rp]=$(( ${r_f[$rp]:-0} + ${tf[$i]:-0} ))
  (( fr > ${r_rss[$rp]:-0} )) && r_rss[$rp]=$fr
  (( kr > ${r_rssk[$rp]:-0} )) && r_rssk[$rp]=$kr
  printf "%-9s %8.1f %8.1f %8s %8s %9s  %s\n" "$s" "$(echo "${tf[$i]:-0} / $div / 1000000" | bc -l)" \
    "$(echo "${tk[$i]:-0} / $div / 1000000" | bc -l)" "$fr" "$kr" "$((size / 1024))" "$rel"
done

echo
printf "%-40s %5s %5s %5s %5s %10s %10s %7s %9s %9s %5s\n" repository built objs bytes excl ferry-ms kubectl-ms speedup ferryRSS kubeRSS rss!
for rp in $(printf '%s\n' "${!r_n[@]}" "${!r_excl[@]}" | sort -u); do
  k=${r_k[$rp]:-0}; f=${r_f[$rp]:-0}
  printf "%-40s %5s %5s %5s %5s %10.0f %10.0f %6.1fx %7sKi %7sKi %5s\n" "$rp" "${r_n[$rp]:-0}" "${r_obj[$rp]:-0}" \
    "${r_bytes[$rp]:-0}" "${r_excl[$rp]:-0}" "$(echo "$f / $div / 1000000" | bc -l)" \
    "$(echo "$k / $div / 1000000" | bc -l)" "$(echo "$k / ($f + 1)" | bc -l)" "${r_rss[$rp]:-0}" "${r_rssk[$rp]:-0}" "${r_over[$rp]:-0}"
done
echo
printf "summary: objects identical %d/%d, bytes identical %d/%d, excluded (network) %d, both fail %d, ferry-only ok %d; time ferry %.2f s, kubectl %.2f s, speed-up %.1fx; RSS over bound %d\n" \
  "$no" "$n" "$nb" "$n" "$nexcl" "$nboth" "$nfok" "$(echo "$tot_f / $div / 1000000000" | bc -l)" \
  "$(echo "$tot_k / $div / 1000000000" | bc -l)" "$(echo "$tot_k / ($tot_f + 1)" | bc -l)" "$over"
echo "outputs: $out (<repository>__<path with __ for />.{k,f}.{yaml,err}: k = kubectl, f = ferry)"
