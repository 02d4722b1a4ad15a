"""Benchmark of the LLaCA merge on the trainable shapes of LLaVA-1.5-7B with LoRA r=128 (a benchmark, not a test).

    python -m llaca_plugin.bench [--scale S] [--threads N] [--repeats R] [--no-fused] [--device cpu|cuda]

Tensors: 32 layers x (q, k, v, o: A 128x4096, B 4096x128; gate, up: A 128x4096, B 11008x128; down: A 128x11008,
B 4096x128) = 448 LoRA tensors, plus the projector 1024 -> 4096 -> 4096 with biases (452 tensors, 340.8 M
parameters at scale 1; `--scale` multiplies every dimension, not the tensor count). Reports, per optimizer step
(median of --repeats interleaved rounds after a warm-up round): one torch.optim.AdamW step (default, foreach=True,
fused=True), the merge (`LLaCAMerger.before_step` + `after_step`, eager and with fused norms), a per-tensor loop
in the style of the released code (three norms, one float() host sync, out-of-place EMA update and a fresh
gradient copy per tensor), a plain copy of all gradients; the merge's bandwidth (minimum traffic: 9 fp32 passes =
read g, g_prev, θ, θ* for the norms, lerp, copy g) against the copy's; and the extra bytes per rank (computed,
and the memory growth when the merger is created). Everything fp32, on the CPU unless --device says otherwise;
the targets are the CPU's (one thread).
"""
from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace

import psutil
import torch

from .config import LLaCAConfig
from .torch_hooks import LLaCAMerger

MIN_PASSES = 9          # read g, g_prev, θ, θ* (norms); read θ*, θ, write θ* (lerp); read g, write g_prev
TARGETS = {"default": 1.0, "fused": 3.0}     # merge ≤ target × AdamW step; and ≥ 3x faster than the released style


def llava_lora_shapes(scale: float = 1.0) -> list[tuple[str, tuple[int, ...]]]:
    """(name, shape) of LLaVA-1.5-7B's LoRA r=128 tensors and mlp2x_gelu projector, dimensions x scale."""
    def dim(n):
        return max(1, round(n * scale))
    h, mlp, r, vis = dim(4096), dim(11008), dim(128), dim(1024)
    io = {"q_proj": (h, h), "k_proj": (h, h), "v_proj": (h, h), "o_proj": (h, h),
          "gate_proj": (h, mlp), "up_proj": (h, mlp), "down_proj": (mlp, h)}
    shapes = []
    for layer in range(32):
        for module, (fan_in, fan_out) in io.items():
            kind = "self_attn" if module.endswith(("q_proj", "k_proj", "v_proj", "o_proj")) else "mlp"
            prefix = f"base_model.model.model.language_model.layers.{layer}.{kind}.{module}"
            shapes += [(f"{prefix}.lora_A.default.weight", (r, fan_in)),
                       (f"{prefix}.lora_B.default.weight", (fan_out, r))]
    projector = "base_model.model.model.multi_modal_projector"
    shapes += [(f"{projector}.linear_1.weight", (h, vis)), (f"{projector}.linear_1.bias", (h,)),
               (f"{projector}.linear_2.weight", (h, h)), (f"{projector}.linear_2.bias", (h,))]
    return shapes


def interleaved(candidates: dict, repeats: int, sync=lambda: None) -> dict[str, float]:
    """Median seconds per call of each candidate, measured in `repeats` rounds that call every candidate once
    (after one warm-up round), so that the machine's bandwidth drifts hit all of them alike."""
    for fn in candidates.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(repeats):
        for name, fn in candidates.items():
            sync()
            t0 = time.perf_counter()
            fn()
            sync()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(ts) for name, ts in times.items()}


@torch.no_grad()
def released_style_loop(params, grads, ema: list, prev: list) -> None:
    """One step the way the released code does it: per tensor, three norms and one host sync, an
    out-of-place EMA update and a fresh copy of the gradient (fp32 here, like our merge)."""
    for i, (p, g) in enumerate(zip(params, grads)):
        a = torch.norm(p - ema[i], p=1)
        b = torch.norm(g, p=1)
        c = torch.norm(g - prev[i], p=1)
        alpha = float((1 + b) / (a * c) * 2)
        if not 0 < alpha < 1:
            alpha = 0.01
        ema[i] = ema[i] * (1 - alpha) + p * alpha
        prev[i] = g.clone()


def run(scale: float, threads: int, repeats: int, fused: bool, device: str = "cpu") -> dict:
    """Everything alive at once (parameters, gradients, one AdamW state shared by the three AdamW forms, the
    merger's EMA and g_(t-1), the released-style EMA and g_(t-1): 6 x 4 bytes per parameter) and timed
    in interleaved rounds."""
    torch.set_num_threads(threads)
    gen = torch.Generator().manual_seed(0)
    shapes = llava_lora_shapes(scale)
    params = [torch.nn.Parameter((torch.randn(s, generator=gen) * 0.02).to(device)) for _, s in shapes]
    for p in params:
        p.grad = (torch.randn(p.shape, generator=gen) * 1e-3).to(device)
    grads = [p.grad for p in params]
    numel = sum(p.numel() for p in params)
    out = {"tensors": len(params), "numel": numel, "scale": scale, "threads": threads, "device": device}
    cuda = device.startswith("cuda")
    fused = fused and not cuda                 # fused norms are a CPU option (see LLaCAConfig.fused_norms)
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    memory = torch.cuda.memory_allocated if cuda else (lambda: psutil.Process().memory_info().rss)

    adamw = {"adamw_default": torch.optim.AdamW(params, lr=1e-5)}
    adamw["adamw_default"].step()                            # creates the moments, shared below
    for label, kwargs in (("adamw_foreach", {"foreach": True}), ("adamw_fused", {"fused": True})):
        adamw[label] = torch.optim.AdamW(params, lr=1e-5, **kwargs)
        if not cuda:               # on CUDA the fused form keeps its step counts on the device: own moments
            adamw[label].state = adamw["adamw_default"].state

    before = memory()
    merger = LLaCAMerger([(n, p) for (n, _), p in zip(shapes, params)], LLaCAConfig())
    configs = {"merge_eager": merger.config, "merge_fused": replace(merger.config, fused_norms=True)}

    def merge(label):
        def call():
            merger.config = configs[label]                   # same buffers, eager or fused norms
            merger.before_step()
            merger.after_step()
        return call

    merge("merge_eager")()                                   # the first call initialises the EMA
    out["memory_growth"] = memory() - before
    out["state_bytes"] = sum(b.numel() * b.element_size() for b in merger._ema + merger._prev_grad)
    if fused:
        t0 = time.perf_counter()
        merge("merge_fused")()
        out["compile_seconds"] = time.perf_counter() - t0

    ema = [p.detach().clone() for p in params]
    prev = [g.clone() for g in grads]
    flat_grads = [g.view(-1) for g in grads]
    candidates = {name: opt.step for name, opt in adamw.items()}
    candidates.update({label: merge(label) for label in (configs if fused else ["merge_eager"])})
    candidates["released_style"] = lambda: released_style_loop(params, grads, ema, prev)
    candidates["copy"] = lambda: torch._foreach_copy_(merger._prev_grad, flat_grads)
    out.update(interleaved(candidates, repeats, sync))
    return out


def report(r: dict) -> str:
    gb = 1e9
    n = r["numel"]
    copy_bw = 2 * 4 * n / r["copy"] / gb
    lines = [f"LLaCA merge benchmark: {r['tensors']} tensors, {n / 1e6:.1f} M fp32 parameters "
             f"(scale {r['scale']}), {r['device']}, {r['threads']} thread(s), torch {torch.__version__}",
             "",
             f"{'per optimizer step':<34}{'ms':>10}"]
    rows = [("AdamW, default" + (" (for-loop)" if r["device"] == "cpu" else ""), "adamw_default"), ("AdamW, foreach=True", "adamw_foreach"),
            ("AdamW, fused=True", "adamw_fused"), ("released-code-style loop", "released_style"),
            ("plain copy of all gradients", "copy"), ("merge, eager norms (default)", "merge_eager"),
            ("merge, fused norms (torch.compile)", "merge_fused")]
    lines += [f"{label:<34}{r[key] * 1e3:>10.1f}" for label, key in rows if key in r]
    merges = [k for k in ("merge_eager", "merge_fused") if k in r]
    lines += ["", f"{'merge time as a ratio to':<34}" + "".join(f"{k.split('_')[1]:>10}" for k in merges)]
    for label, key in rows[:3]:
        lines.append(f"{label:<34}" + "".join(f"{r[m] / r[key]:>10.2f}" for m in merges))
    lines.append(f"{'speed-up over the released style':<34}"
                 + "".join(f"{r['released_style'] / r[m]:>10.2f}" for m in merges))
    lines.append(f"{'bandwidth GB/s (copy: ' + f'{copy_bw:.1f})':<34}"
                 + "".join(f"{MIN_PASSES * 4 * n / r[m] / gb:>10.1f}" for m in merges))
    lines.append(f"{'  as a fraction of the copy':<34}"
                 + "".join(f"{MIN_PASSES * 4 * n / r[m] / gb / copy_bw:>10.2f}" for m in merges))
    lines += ["", f"extra bytes per rank: {r['state_bytes'] / gb:.2f} GB = EMA + g_(t-1), 2 x 4 bytes x "
              f"{n / 1e6:.1f} M trainable (/ world size under ZeRO >= 1; 3 x with diff_quotient); measured "
              f"memory growth {r['memory_growth'] / gb:.2f} GB; no per-step temporaries beyond per-tensor scalars"]
    if "compile_seconds" in r:
        lines.append(f"fused norms: first call {r['compile_seconds']:.1f} s (torch.compile, once per process; "
                     f"cached on disk across processes)")
    if r["device"] != "cpu":
        return "\n".join(lines)
    lines += ["", "targets (one thread): merge <= 1.0 x default AdamW, <= 3.0 x fused AdamW, >= 3 x faster "
              "than the released-code style"]
    for m in merges:
        checks = [r[m] <= TARGETS["default"] * r["adamw_default"], r[m] <= TARGETS["fused"] * r["adamw_fused"],
                  r["released_style"] >= 3 * r[m]]
        lines.append(f"  {m.replace('_', ', '):<16}" + "  ".join(
            f"{name}: {'met' if ok else 'NOT met'}" for name, ok in zip(("default", "fused", "released"), checks)))
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies every dimension (default 1: 7B)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-fused", action="store_true", help="skip the torch.compile'd norms")
    parser.add_argument("--device", default="cpu", help="cpu (the targets' machine) or cuda")
    args = parser.parse_args(argv)
    if not (0 < args.scale <= 1) or args.threads < 1 or args.repeats < 1:
        parser.error("need 0 < --scale <= 1, --threads >= 1, --repeats >= 1")
    print(report(run(args.scale, args.threads, args.repeats, fused=not args.no_fused, device=args.device)))


if __name__ == "__main__":
    main()
