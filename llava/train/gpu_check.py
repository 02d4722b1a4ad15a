"""GPU check: a randomly initialised LLaVA-1.5-7B-shaped model trained for a few steps with LoRA r128 in bf16 under
DeepSpeed ZeRO-2, without and with LLaCA; step time, the merge against the optimizer step, and peak memory.

    bash scripts/gpu_check.sh                                    # one 80 GB GPU, a few minutes
    python -m llava.train.gpu_check --preset tiny --steps 2 --warmup 1 --out DIR       # CPU, seconds

Each variant (`lora`, `llaca`) runs in a process of its own (clean peak-memory counts) through the training path:
upstream's finetune_lora.sh flags for the preset (`llava.model.presets.training_argv`, scripts/zero2.json) parsed
by `llava.train.arguments`, the model from `llava.model.untrained` (real shapes, random weights, built on the
GPU), `LLaVATrainer` with DeepSpeed, and for `llaca` the `LLaCACallback` (the plugin attached to the engine).
Every record is a full-length synthetic one (`full_length_item`: the preset's image through the CLIP processor,
--model_max_length tokens). Timing: the step (forward, backward, optimizer step) between the Trainer's
step-begin and step-end events; the optimizer step and the merge from hooks on the torch optimizer DeepSpeed
steps (a pre-hook, a post-hook registered before the plugin's, and a global post-hook, which torch runs after
every optimizer's own), with a device sync in each. Memory: on CUDA `max_memory_allocated` from the first step
on, on CPU the process's peak RSS. The plugin's and the optimizer's state on this GPU are measured and set
against `llava.model.dryrun`'s prediction for the same layout.

Writes OUT/<preset>.json (both variants, every step) and OUT/<preset>.md (the summary, also printed);
OUT defaults to results/gpu_check.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from llava.model.presets import REPO

VARIANTS = ("lora", "llaca")
ZERO_STAGE = 2


class _RepeatedItem(torch.utils.data.Dataset):
    """`n` copies of one training item (timing needs shapes, not content)."""

    def __init__(self, item: dict, n: int):
        self.item, self.n = item, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        return self.item


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timer_callback(trainer, device: torch.device):
    """A TrainerCallback recording per optimizer step: wall seconds of the step, of the optimizer's own step
    calls and of what runs after them (the LLaCA merge), and the memory at the first step and at the peak.
    Add it before the LLaCA callback: its post-hook must precede the plugin's."""
    from torch.optim.optimizer import register_optimizer_step_post_hook
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.records: list[dict] = []
            self.memory: dict = {}
            self._marks: list[tuple[str, float]] = []
            self._hooks = []

        def _mark(self, what: str):
            def hook(*_):
                _sync(device)
                self._marks.append((what, time.perf_counter()))
            return hook

        def on_train_begin(self, args, state, control, **kwargs):
            inner = client_optimizer(trainer.model_wrapped)
            self._hooks = [inner.register_step_pre_hook(self._mark("start")),
                           inner.register_step_post_hook(self._mark("stepped")),
                           register_optimizer_step_post_hook(self._mark("merged"))]

        def on_step_begin(self, args, state, control, **kwargs):
            if not self.records and not self.memory:
                self.memory["first_step_bytes"] = _memory_now(device)
                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(device)
            _sync(device)
            self._marks = [("step", time.perf_counter())]

        def on_step_end(self, args, state, control, **kwargs):
            _sync(device)
            end = time.perf_counter()
            optimizer_s = merge_s = 0.0
            for (what, t), (nxt, t_next) in zip(self._marks, self._marks[1:]):
                if (what, nxt) == ("start", "stepped"):
                    optimizer_s += t_next - t
                elif (what, nxt) == ("stepped", "merged"):
                    merge_s += t_next - t
            self.records.append({"step_s": end - self._marks[0][1], "optimizer_s": optimizer_s, "merge_s": merge_s,
                                 "optimizer_calls": sum(what == "start" for what, _ in self._marks)})

        def on_train_end(self, args, state, control, **kwargs):
            for hook in self._hooks:
                hook.remove()
            self.memory["peak_bytes"] = _memory_peak(device)
            self.memory["kind"] = "cuda max_memory_allocated" if device.type == "cuda" else "cpu peak RSS"

    return StepTimer()


def client_optimizer(engine) -> torch.optim.Optimizer:
    """The torch optimizer inside a DeepSpeed engine's optimizer wrapper (the one the plugin hooks)."""
    inner = engine.optimizer
    while not isinstance(inner, torch.optim.Optimizer):
        inner = inner.optimizer
    return inner


def _memory_now(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.memory_allocated(device)
    import psutil

    return psutil.Process().memory_info().rss


def _memory_peak(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024       # Linux: KiB


def run_variant(preset_name: str, variant: str, steps: int, warmup: int, batch: int, lora_r: int, lora_alpha: int,
                workdir: Path) -> dict:
    """Train `warmup + steps` optimizer steps of one variant in this process; returns its measurements."""
    import torch.distributed as dist

    from llava.model import presets, zero_memory
    from llava.model.untrained import build_untrained, full_length_item
    from llava.train.arguments import parse_args
    from llava.train.data import DataCollatorForSupervisedDataset
    from llava.train.dist import ensure_single_process_env, init_deepspeed_comm, prepare_deepspeed_on_cpu
    from llava.train.llaca import LLaCACallback, config_from_args
    from llava.train.trainer import LLaVATrainer

    preset = presets.get_preset(preset_name)
    ensure_single_process_env()
    prepare_deepspeed_on_cpu()
    lm_dir, vision_dir = presets.write_config_dirs(preset, workdir)
    total = warmup + steps
    argv = presets.training_argv(preset, lm_dir, vision_dir, workdir / "out", lora_r=lora_r, lora_alpha=lora_alpha,
                                 zero=ZERO_STAGE)
    argv += ["--per_device_train_batch_size", str(batch), "--max_steps", str(total), "--save_strategy", "no",
             "--logging_steps", "1", "--dataloader_num_workers", "0", "--llaca", str(variant == "llaca"),
             "--llaca_log_steps", str(total)]
    model_args, data_args, args = parse_args(argv)
    init_deepspeed_comm()
    device = torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")
    t0 = time.perf_counter()
    model, tokenizer, image_processor = build_untrained(model_args, data_args, args, device=device)
    build_s = time.perf_counter() - t0
    item = full_length_item(model, tokenizer, image_processor, args.model_max_length, preset.sample_image)
    collator = DataCollatorForSupervisedDataset(tokenizer.pad_token_id)
    trainer = LLaVATrainer(model=model, args=args, train_dataset=_RepeatedItem(item, batch * total),
                           processing_class=tokenizer, data_collator=collator)
    groups = zero_memory.param_groups(trainer.create_optimizer())
    timer = _timer_callback(trainer, device)
    trainer.add_callback(timer)
    llaca = None
    if variant == "llaca":
        llaca = LLaCACallback(trainer)
        trainer.add_callback(llaca)
    t0 = time.perf_counter()
    trainer.train()
    train_s = time.perf_counter() - t0
    world = dist.get_world_size()
    numels = zero_memory.master_numels(groups, ZERO_STAGE, world)
    inner = client_optimizer(trainer.model_wrapped)
    result = {
        "variant": variant, "device": torch.cuda.get_device_name(device) if device.type == "cuda" else
        f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)",
        "world_size": world, "build_s": build_s, "train_s": train_s, "steps": timer.records, "memory": timer.memory,
        "losses": [log["loss"] for log in trainer.state.log_history if "loss" in log],
        "optimizer_state_bytes": {"measured": zero_memory.optimizer_bytes(inner),
                                  "dryrun": zero_memory.optimizer_state_bytes(groups, numels, type(inner))},
    }
    if llaca is not None:
        handle = llaca.handle
        result["llaca_state_bytes"] = {"measured": zero_memory.llaca_bytes(handle),
                                       "dryrun": zero_memory.llaca_state_bytes(numels, config_from_args(args))}
        result["llaca_counts"] = handle.counts
    return result


# ------------------------------------------------------------------------------------------ the two runs


def _median(records: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in records)


def summarise(results: dict, warmup: int) -> dict:
    """Medians over the steps after `warmup`, per variant, and the LLaCA variant against the LoRA one."""
    out = {}
    for variant, r in results.items():
        measured = r["steps"][warmup:]
        out[variant] = {"step_s": _median(measured, "step_s"), "optimizer_s": _median(measured, "optimizer_s"),
                        "merge_s": _median(measured, "merge_s"), "peak_bytes": r["memory"]["peak_bytes"],
                        "first_step_bytes": r["memory"]["first_step_bytes"]}
    lora, llaca = out["lora"], out["llaca"]
    out["llaca_vs_lora"] = {"step_time_ratio": llaca["step_s"] / lora["step_s"],
                            "merge_over_optimizer_step": llaca["merge_s"] / llaca["optimizer_s"],
                            "peak_bytes_added": llaca["peak_bytes"] - lora["peak_bytes"]}
    return out


def _size(n: float) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6)):
        if abs(n) >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n / 1e3:.1f} kB"


def markdown(meta: dict, results: dict, summary: dict) -> str:
    lora, llaca, cmp = summary["lora"], summary["llaca"], summary["llaca_vs_lora"]
    state = results["llaca"]["llaca_state_bytes"]
    opt = {v: results[v]["optimizer_state_bytes"] for v in VARIANTS}
    ms = 1e3
    lines = [
        f"# GPU check: {meta['preset']}, LoRA r{meta['lora_r']}/α{meta['lora_alpha']}, bf16, ZeRO-{ZERO_STAGE}, "
        f"{results['lora']['world_size']} process",
        "",
        f"{results['lora']['device']}; torch {meta['torch']}, deepspeed {meta['deepspeed']}, transformers "
        f"{meta['transformers']}; per-device batch {meta['per_device_batch']} × {meta['model_max_length']} tokens "
        f"({meta['image_seq_length']} image tokens); medians of {meta['steps']} steps after {meta['warmup']} "
        f"warm-up; {meta['date']}; wall {meta['wall_s']:.0f} s. Command: `{meta['command']}`",
        "",
        "| | LoRA | LoRA + LLaCA |",
        "|---|---|---|",
        f"| step (forward, backward, optimizer step) | {lora['step_s']:.3f} s | {llaca['step_s']:.3f} s "
        f"({100 * (cmp['step_time_ratio'] - 1):+.1f} %) |",
        f"| optimizer step (DeepSpeed's calls of AdamW) | {lora['optimizer_s'] * ms:.1f} ms | "
        f"{llaca['optimizer_s'] * ms:.1f} ms |",
        f"| LLaCA merge | – | {llaca['merge_s'] * ms:.1f} ms ({cmp['merge_over_optimizer_step']:.2f} × the "
        f"optimizer step) |",
        f"| peak memory ({results['lora']['memory']['kind']}) | {_size(lora['peak_bytes'])} | "
        f"{_size(llaca['peak_bytes'])} ({'+' if cmp['peak_bytes_added'] >= 0 else ''}"
        f"{_size(cmp['peak_bytes_added'])}) |",
        f"| memory at the first step | {_size(lora['first_step_bytes'])} | {_size(llaca['first_step_bytes'])} |",
        f"| optimizer state here, measured / dryrun | {_size(opt['lora']['measured']['total'])} / "
        f"{_size(opt['lora']['dryrun']['total'])} | {_size(opt['llaca']['measured']['total'])} / "
        f"{_size(opt['llaca']['dryrun']['total'])} |",
        f"| LLaCA state here, measured / dryrun | – | {_size(state['measured']['total'])} / "
        f"{_size(state['dryrun']['total'])} ({' + '.join(k for k in state['measured'] if k != 'total')}) |",
        "",
        f"Last logged loss: LoRA {results['lora']['losses'][-1]:.3f}, LLaCA {results['llaca']['losses'][-1]:.3f}; "
        f"LLaCA tensor-steps: {results['llaca']['llaca_counts']}.",
    ]
    return "\n".join(lines) + "\n"


def _run_worker(variant: str, args, result: Path, log: Path) -> dict:
    cmd = [sys.executable, "-m", "llava.train.gpu_check", "--worker", variant, "--result", str(result),
           "--preset", args.preset, "--steps", str(args.steps), "--warmup", str(args.warmup),
           "--per_device_batch", str(args.per_device_batch), "--lora_r", str(args.lora_r),
           "--lora_alpha", str(args.lora_alpha)]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    with open(log, "w") as f:
        proc = subprocess.run(cmd, cwd=REPO, env=env, stdout=f, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        tail = log.read_text()[-4000:]
        raise RuntimeError(f"the {variant} run failed (exit {proc.returncode}); its log {log} ends:\n{tail}")
    return json.loads(result.read_text())


def main(argv: list[str] | None = None) -> None:
    from llava.model.presets import PRESETS, get_preset

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="llava-v1.5-7b")
    parser.add_argument("--steps", type=int, default=6, help="measured optimizer steps per variant")
    parser.add_argument("--warmup", type=int, default=2, help="optimizer steps before the measured ones")
    parser.add_argument("--per_device_batch", type=int, default=4, help="records of --model_max_length tokens")
    parser.add_argument("--lora_r", type=int, default=128)
    parser.add_argument("--lora_alpha", type=int, default=256)
    parser.add_argument("--out", type=Path, default=REPO / "results" / "gpu_check", help="where the results go")
    parser.add_argument("--worker", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if min(args.steps, args.per_device_batch, args.lora_r) < 1 or args.warmup < 0:
        parser.error("--steps, --per_device_batch and --lora_r must be >= 1, --warmup >= 0")
    if args.worker:
        with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
            result = run_variant(args.preset, args.worker, args.steps, args.warmup, args.per_device_batch,
                                 args.lora_r, args.lora_alpha, Path(tmp))
        args.result.write_text(json.dumps(result, indent=1) + "\n")
        return
    import deepspeed
    import transformers

    preset = get_preset(args.preset)
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    results = {}
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        for variant in VARIANTS:
            print(f"[gpu_check] {variant}: {args.warmup} + {args.steps} steps ...", flush=True)
            log = args.out / f"{preset.name}_{variant}.log"
            results[variant] = _run_worker(variant, args, Path(tmp) / f"{variant}.json", log)
    summary = summarise(results, args.warmup)
    meta = {"preset": preset.name, "lora_r": args.lora_r, "lora_alpha": args.lora_alpha, "steps": args.steps,
            "warmup": args.warmup, "per_device_batch": args.per_device_batch,
            "model_max_length": preset.model_max_length, "image_seq_length": preset.image_tokens,
            "torch": torch.__version__, "deepspeed": deepspeed.__version__, "transformers": transformers.__version__,
            "date": time.strftime("%Y-%m-%d"), "wall_s": time.perf_counter() - started,
            "command": "python -m llava.train.gpu_check " + " ".join(argv if argv is not None else sys.argv[1:])}
    text = markdown(meta, results, summary)
    (args.out / f"{preset.name}.json").write_text(json.dumps({"meta": meta, "summary": summary, "runs": results},
                                                             indent=1) + "\n")
    (args.out / f"{preset.name}.md").write_text(text)
    print(text + f"\nwrote {args.out / (preset.name + '.json')} and {args.out / (preset.name + '.md')}")


if __name__ == "__main__":
    main()
