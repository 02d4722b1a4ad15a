"""LLaCA's gradient-informed EMA merge (arXiv 2410.10868) for plain torch and DeepSpeed ZeRO 0-3, and instruction
grouping.

    from llaca_plugin import LLaCAConfig, attach, attach_deepspeed
    merger = attach(optimizer, model.named_parameters(), LLaCAConfig())    # plain torch
    handle = attach_deepspeed(engine, LLaCAConfig(variant="paper"))       # after deepspeed.initialize

math: merge.py; plain torch: torch_hooks.py; DeepSpeed: deepspeed_patch.py (imports DeepSpeed lazily); logs: log.py;
grouping: grouping.py (no torch). Names are imported on first use, so `python -m llaca_plugin.grouping` stays light.
"""
from __future__ import annotations

import importlib

_EXPORTS = {"LLaCAConfig": "config", "LLaCAMerger": "torch_hooks", "attach": "torch_hooks",
            "attach_deepspeed": "deepspeed_patch"}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'llaca_plugin' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
