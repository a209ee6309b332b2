#!/usr/bin/env bash
# Install everything (CPU torch, the package, Chromium) and run lint, types and the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install.sh
. .venv/bin/activate
ruff check src tests
ruff format --check src tests
mypy
python -m pytest "$@"
