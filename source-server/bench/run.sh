#!/usr/bin/env bash
# Source-server benchmark: Ferry's mirror + canonical artifact vs the plain git pipeline
# (git clone --depth 1 + tar --sort=name + gzip -6 + sha256sum) on a generated repository of
# ~5k files / ~50 MB, over file://. Prints cold, unchanged-poll and one-file-change numbers.
#
#   source-server/bench/run.sh [files] [total-MB]
#
# Targets (issue 2): cold <= 0.5x the git pipeline; unchanged poll <= 20 ms.
set -euo pipefail
FILES=${1:-5000}
MB=${2:-50}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
WORK=$(mktemp -d /tmp/ferry-bench.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null
export GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@ferry.invalid
export GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@ferry.invalid

echo "building mirror-bench (release)…" >&2
cargo build -q --release -p ferry-source-server --example mirror-bench --manifest-path "$ROOT/Cargo.toml"
BENCH=$CARGO_TARGET_DIR/release/examples/mirror-bench

echo "generating $FILES files / ~$MB MB…" >&2
git init -q --bare -b main "$WORK/repo.git"
git init -q -b main "$WORK/src"
python3 - "$WORK/src" "$FILES" "$MB" <<'PY'
import os, random, sys, base64
root, files, mb = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rnd = random.Random(42)
words = [''.join(rnd.choice('abcdefghijklmnopqrstuvwxyz') for _ in range(rnd.randint(3, 10))) for _ in range(2000)]
per = mb * 1024 * 1024 // files
for i in range(files):
    d = os.path.join(root, f"apps/team{i % 50:02d}/svc{i % 7}")
    os.makedirs(d, exist_ok=True)
    out, size = [], 0
    while size < per:
        if rnd.random() < 0.3:  # some high-entropy lines (certs, hashes), the rest YAML-ish text
            line = "  data: " + base64.b64encode(rnd.randbytes(48)).decode()
        else:
            line = "  " + ": ".join(rnd.choice(words) for _ in range(2)) + " " + " ".join(rnd.choice(words) for _ in range(6))
        out.append(line); size += len(line) + 1
    with open(os.path.join(d, f"obj{i:05d}.yaml"), "w") as f:
        f.write("\n".join(out) + "\n")
PY
git -C "$WORK/src" add -A
git -C "$WORK/src" commit -q -m initial
git -C "$WORK/src" push -q "$WORK/repo.git" HEAD:main
URL="file://$WORK/repo.git"
du -sh --apparent-size "$WORK/src/apps" >&2

now() { date +%s%N; }
elapsed_ms() { echo "scale=1; ($(now) - $1) / 1000000" | bc; }

git_pipeline() { # dir
  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 --exclude=.git -C "$1" -cf - . | gzip -6 > "$WORK/git.tar.gz"
  sha256sum "$WORK/git.tar.gz" > /dev/null
}

sync; t=$(now)
git clone -q --depth 1 "$URL" "$WORK/clone"
git_pipeline "$WORK/clone"
GIT_COLD=$(elapsed_ms "$t")

sync; FERRY_COLD=$("$BENCH" cold "$URL" "$WORK/cache")

t=$(now); for _ in $(seq 20); do git ls-remote -q "$URL" refs/heads/main > /dev/null; done
GIT_POLL=$(echo "scale=1; $(elapsed_ms "$t") / 20" | bc)
FERRY_POLL=$("$BENCH" poll "$URL" "$WORK/cache" 20)

echo "changed $(date +%s%N)" >> "$WORK/src/apps/team00/svc0/obj00000.yaml"
git -C "$WORK/src" commit -q -am "one file"
git -C "$WORK/src" push -q "$WORK/repo.git" HEAD:main
t=$(now)
git -C "$WORK/clone" fetch -q --depth 1 origin main
git -C "$WORK/clone" reset -q --hard FETCH_HEAD
git_pipeline "$WORK/clone"
GIT_UPDATE=$(elapsed_ms "$t")
FERRY_UPDATE=$("$BENCH" update "$URL" "$WORK/cache")

field() { sed -n "s/.*\b$2=\([^ ]*\).*/\1/p" <<<"$1"; }
printf '\n%-34s %12s %12s %8s\n' "scenario ($FILES files, ~$MB MB)" "ferry ms" "git ms" "ratio"
for row in "cold mirror+artifact|$(field "$FERRY_COLD" ms)|$GIT_COLD" \
           "unchanged poll (median of 20)|$(field "$FERRY_POLL" ms)|$GIT_POLL" \
           "one-file change|$(field "$FERRY_UPDATE" ms)|$GIT_UPDATE"; do
  IFS='|' read -r name f g <<<"$row"
  printf '%-34s %12s %12s %8s\n' "$name" "$f" "$g" "$(echo "scale=2; $f / $g" | bc)"
done
echo
echo "ferry cold:   $FERRY_COLD"
echo "ferry poll:   $FERRY_POLL"
echo "ferry update: $FERRY_UPDATE"
echo "targets: cold ratio <= 0.50; unchanged poll <= 20 ms"
