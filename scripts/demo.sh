#!/usr/bin/env bash
# One command from a fresh clone to a first answer: install, build the index, ask.
set -euo pipefail
cd "$(dirname "$0")/.."
DOCQA_SKIP_BROWSER=1 ./scripts/install.sh
. .venv/bin/activate
docqa index
docqa ask "${1:-When did EUFOR Althea take over from SFOR?}"
