"""LLaCA's gradient-informed EMA merge (arXiv 2410.10868) for plain torch and DeepSpeed ZeRO 0-3.

    from llaca_plugin import LLaCAConfig, attach, attach_deepspeed
    merger = attach(optimizer, model.named_parameters(), LLaCAConfig())    # plain torch
    handle = attach_deepspeed(engine, LLaCAConfig(variant="paper"))       # after deepspeed.initialize

math: merge.py; plain torch: torch_hooks.py; DeepSpeed: deepspeed_patch.py (imports DeepSpeed lazily); logs: log.py.
"""
from .config import LLaCAConfig
from .torch_hooks import LLaCAMerger, attach


def attach_deepspeed(engine, config: LLaCAConfig | None = None):
    """Attach the merge to a DeepSpeedEngine; see `llaca_plugin.deepspeed_patch.attach_deepspeed`."""
    from .deepspeed_patch import attach_deepspeed as _attach

    return _attach(engine, config)


__all__ = ["LLaCAConfig", "LLaCAMerger", "attach", "attach_deepspeed"]
