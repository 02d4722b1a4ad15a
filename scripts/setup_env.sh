#!/usr/bin/env bash
# Create .venv (if missing) and install this project into it, idempotently.
# Usage: source scripts/setup_env.sh [extra]      e.g. `source scripts/setup_env.sh test`
# torch is installed first and then pinned, so the rest never replaces it: on a machine without CUDA
# `pip install torch==2.13.0` takes the local CPU wheel, on a CUDA machine the CUDA build from PyPI.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
EXTRA="${1:-}"
TORCH_VERSION="${TORCH_VERSION:-2.13.0}"
PY="${PYTHON:-python3}"
cd "$ROOT"
if [ ! -x .venv/bin/python ]; then
    echo "[setup] creating .venv"
    "$PY" -m venv .venv
fi
# shellcheck disable=SC1091
. .venv/bin/activate
# An install with an extra also satisfies the plain install (the test extra is a superset).
stamp=".venv/.installed-$(cat pyproject.toml | sha1sum | cut -c1-12)${EXTRA:+-$EXTRA}"
if [ ! -f "$stamp" ] && ! { [ -z "$EXTRA" ] && compgen -G "$stamp-*" > /dev/null; }; then
    python -m pip install -q --upgrade pip >/dev/null
    if ! python -c "import torch" >/dev/null 2>&1; then
        echo "[setup] installing torch==$TORCH_VERSION"
        python -m pip install -q "torch==$TORCH_VERSION"
    fi
    pin="$(mktemp)"
    python -c "import torch; print('torch==' + torch.__version__)" > "$pin"
    echo "[setup] installing the project${EXTRA:+ with [$EXTRA]} ($(cat "$pin"))"
    python -m pip install -q -c "$pin" -e ".${EXTRA:+[$EXTRA]}"
    rm -f "$pin"
    touch "$stamp"
fi
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
export TOKENIZERS_PARALLELISM=false
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
