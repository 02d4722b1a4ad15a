"""What the last merge did, for the Trainer's log and for `llaca_log.jsonl`.

`summary(merger)` is a flat dict of floats: median, p10, p90, min and max of the finite raw coefficients (k)
and of the applied weights (on the new weights), the three cumulative counts and the step count; statistics
of an empty set are NaN. `append_jsonl(path, merger, step)` appends one line
    {"step", "summary": {...}, "tensors": [{"name", "numel", "raw", "applied", "d", "G", "H"}, ...]}
with null for NaN / infinite / absent values. Merger values are identical on every rank: log on one.
"""
from __future__ import annotations

import json
import math
import os

import torch

_STATS = (("median", 0.5), ("p10", 0.1), ("p90", 0.9), ("min", 0.0), ("max", 1.0))


def summary(merger, prefix: str = "llaca/") -> dict[str, float]:
    """Flat dict for `Trainer.log`: {prefix}raw_median ... {prefix}applied_max, in_range, fallback, skipped,
    steps (and engine_skipped_steps under DeepSpeed)."""
    out: dict[str, float] = {}
    raw = [v for v in merger.raw_coefficients.values() if math.isfinite(v)]
    applied = [v for v in merger.coefficients.values() if v is not None]
    for kind, values in (("raw", raw), ("applied", applied)):
        qs = torch.tensor(values, dtype=torch.float64).quantile(torch.tensor([q for _, q in _STATS],
                                                                             dtype=torch.float64)).tolist() \
            if values else [math.nan] * len(_STATS)
        out.update({f"{prefix}{kind}_{stat}": q for (stat, _), q in zip(_STATS, qs)})
    out.update({f"{prefix}{k}": float(v) for k, v in merger.counts.items()})
    out[f"{prefix}steps"] = float(merger.steps)
    if hasattr(merger, "engine_skipped_steps"):
        out[f"{prefix}engine_skipped_steps"] = float(merger.engine_skipped_steps)
    return out


def jsonl_record(merger, step: int) -> dict:
    """The JSONL line's content (strict JSON: non-finite numbers become null)."""
    return {"step": int(step), "summary": {k: _finite(v) for k, v in summary(merger, prefix="").items()},
            "tensors": [{k: _finite(v) for k, v in r.items()} for r in merger.tensor_records()]}


def append_jsonl(path: str | os.PathLike, merger, step: int) -> None:
    """Append one line for `step` to `path` (one write, flushed: a killed run leaves at most a partial last
    line, which readers skip)."""
    line = json.dumps(jsonl_record(merger, step), allow_nan=False) + "\n"
    with open(path, "a") as f:
        f.write(line)
        f.flush()


def _finite(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v
