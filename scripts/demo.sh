#!/usr/bin/env bash
# Set up the environment and run the main demo (see README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh extra
. .venv/bin/activate
python examples/stream_long_episode.py "$@"
