#!/usr/bin/env bash
# Chart conformance corpus: for every chart below each DIR, the objects the agent applies vs
# `helm template`'s (see helm_conformance.py for how they are compared). Bring the charts first,
# e.g. `git --git-dir MIRROR archive HEAD charts | tar -x -C DIR`; nothing of theirs is committed.
#   applier/bench/helm-conformance.sh [--values-ci] DIR...
# FERRY_HELM / FERRY_KUBECTL as for the tests; builds ferry-applier unless FERRY_APPLIER is set.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ -z "${FERRY_APPLIER:-}" ]; then
  cargo build -q -p ferry-applier --bin ferry-applier
  export FERRY_APPLIER="$PWD/target/debug/ferry-applier"
fi
exec python3 applier/bench/helm_conformance.py "$@"
