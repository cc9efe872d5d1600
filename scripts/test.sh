#!/usr/bin/env bash
# Set up the environment and run every check: ruff, the default test suite, and the docs build.
# Extra arguments go to pytest (e.g. bash scripts/test.sh -m slow).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh tests,docs
# MIKASA-Robo (ManiSkill3 + software Vulkan) where it can be set up; otherwise its tests say why they are skipped.
bash scripts/setup_mikasa.sh || echo "MIKASA-Robo not set up here: its tests will be skipped"
. .venv/bin/activate
ruff check .
ruff format --check .
python -m pytest -n 2 -q "$@"
python -m sphinx -W --keep-going -q -b html docs docs/_build/html
echo "docs built: docs/_build/html/index.html"
