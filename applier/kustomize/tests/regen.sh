#!/usr/bin/env bash
# Regenerates the conformance expectations from real kustomize (kubectl v1.35.2 embeds
# kustomize v5.7.1). Usage: regen.sh [FIXTURE_NAME...]   (default: every fixture)
#
# Fixture layout (applier/kustomize/tests/fixtures/<name>/):
#   the input tree; the kustomization to build is the fixture root unless a file BUILD_DIR
#   holds a relative path (e.g. overlays/prod); LOAD_RESTRICTOR may hold
#   LoadRestrictionsNone. Outputs: expected.yaml (kustomize's stdout) when kustomize
#   succeeds, otherwise expected-error.txt (its stderr) — the native build must then fail too.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
kubectl="${FERRY_KUBECTL:-$repo/.tools/bin/kubectl}"
if [[ ! -x "$kubectl" ]]; then
  echo "regen.sh: kubectl not found at $kubectl (run tests/scripts/install-tools.sh or set FERRY_KUBECTL)" >&2
  exit 1
fi
"$kubectl" version --client 2>/dev/null | grep -q 'Kustomize Version: v5.7.1' || {
  echo "regen.sh: $kubectl does not embed kustomize v5.7.1" >&2; exit 1; }
cd "$here/fixtures"
names=("$@")
if [[ ${#names[@]} -eq 0 ]]; then names=(*/); fi
for name in "${names[@]}"; do
  name="${name%/}"
  dir="$name"
  [[ -f "$name/BUILD_DIR" ]] && dir="$name/$(tr -d '[:space:]' < "$name/BUILD_DIR")"
  args=()
  [[ -f "$name/LOAD_RESTRICTOR" ]] && args+=(--load-restrictor "$(tr -d '[:space:]' < "$name/LOAD_RESTRICTOR")")
  if "$kubectl" kustomize "${args[@]}" "$dir" > "$name/expected.yaml" 2> "$name/.stderr"; then
    rm -f "$name/expected-error.txt"
  else
    rm -f "$name/expected.yaml"
    # Absolute paths of this machine are not part of the expectation.
    sed "s|$here/fixtures/||g" "$name/.stderr" > "$name/expected-error.txt"
  fi
  rm -f "$name/.stderr"
  if [[ -f "$name/expected.yaml" ]]; then echo "ok    $name"; else echo "error $name"; fi
done
