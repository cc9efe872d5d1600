#!/bin/bash
# Wall time of the whole T-Maze BC protocol (docs/bc.md), one run at a time: an earlier revision (default 14a296c,
# the commit of the T-Maze table's 304 s; eager), today's code eager, compiled with an empty compile cache, compiled
# again with the cache warm, eager again, `--compile auto` (ElmurBC decides after timing its first updates; its own empty
# cache), the earlier revision again. Prints each run's training seconds and success; table: docs/results/tmaze_protocol_wall.md.
# Usage: bash benchmarks/tmaze_protocol_wall.sh [REVISION]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
REVISION=${1:-14a296c}
OUT=$(mktemp -d)
trap 'git -C "$ROOT" worktree remove --force "$OUT/old" >/dev/null 2>&1 || true; rm -rf "$OUT"' EXIT
git worktree add --detach "$OUT/old" "$REVISION" >/dev/null 2>&1
LENGTHS=(9 90 900)
run() {  # run NAME FOLDER COMPILE [ENV...]: the protocol with the package of FOLDER (COMPILE: yes, no or "" for none)
    local name=$1 folder=$2 compile=$3
    shift 3
    (cd "$folder" && env OMP_NUM_THREADS=1 PYTHONPATH="$folder" "$@" "$ROOT/.venv/bin/python" -u examples/tmaze_benchmark.py \
        --methods elmur --threads 1 --lengths "${LENGTHS[@]}" ${compile:+--compile "$compile"} --output "$OUT/$name" \
        > "$OUT/$name.log" 2>&1)
    python3 -c "import json; d = json.load(open('$OUT/$name/elmur.json')); print('$name', d['train_seconds'], 's', d['success'])"
}
run "$REVISION-first" "$OUT/old" ""
run today-eager-first "$ROOT" no
run today-compiled-empty-cache "$ROOT" yes TORCHINDUCTOR_CACHE_DIR="$OUT/cache"
run today-compiled-warm-cache "$ROOT" yes TORCHINDUCTOR_CACHE_DIR="$OUT/cache"
run today-eager-second "$ROOT" no
run today-auto "$ROOT" auto TORCHINDUCTOR_CACHE_DIR="$OUT/cache-auto"
run "$REVISION-second" "$OUT/old" ""
