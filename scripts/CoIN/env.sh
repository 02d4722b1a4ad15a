# shellcheck shell=bash
# Sourced by every script of scripts/CoIN/: the repository root (COIN_ROOT) on PYTHONPATH, and PYTHON, the
# interpreter of the chain's logic (llava/coin/), the inference and the scorers. Every other setting is an
# environment variable read by llava/coin/settings.py (published defaults; the table: docs/coin_chain.md).
COIN_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export COIN_ROOT PYTHONPATH="$COIN_ROOT${PYTHONPATH:+:$PYTHONPATH}" PYTHON="${PYTHON:-python}"
