#!/usr/bin/env bash
# Set up .venv with the test extra (if needed) and run the tests.
#   bash scripts/test.sh            the default set (every feature; CI runs this)
#   bash scripts/test.sh --slow     also the heavy multi-process grids marked `slow`
#   bash scripts/test.sh -k name    any other argument goes to pytest
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck disable=SC1091
source "$ROOT/scripts/setup_env.sh" test
cd "$ROOT"
args=()
for a in "$@"; do
    if [ "$a" = "--slow" ]; then args+=(-m "slow or not slow"); else args+=("$a"); fi
done
exec python -m pytest -q "${args[@]}"
