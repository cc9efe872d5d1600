#!/usr/bin/env bash
# Set up the environment and run the main demo (see README.md): behaviour cloning on short T-Mazes,
# then success at corridors up to 9600 steps (pass --help for options; without --quick: up to 10^6).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh extra
. .venv/bin/activate
python examples/tmaze_benchmark.py --quick "$@"
