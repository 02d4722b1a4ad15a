"""One training task of a CoIN chain around its `deepspeed ... llava/train/train_mem.py` command, and a chain.

A per-task script (scripts/CoIN/Train_<chain>/<N>_<Task>.sh) shows its command and brackets it with

    python -m llava.coin.training plan CHAIN TASK            shell code for `eval`: the variables its command
                                                             line uses, or `exit 0` when the task is DONE
    python -m llava.coin.training run CHAIN TASK -- CMD...   CMD with its log; then its outputs are checked and
                                                             DONE is written last

and Train_all.sh runs `python -m llava.coin.training chain CHAIN DIR`: DIR/<train script> of every task of TASKS,
in order. A task is skipped when DONE; it starts from the pretrain projector when it is the first of TASKS, else
from the previous task's folder (the grouped chain: from what its group.json says, llava.coin.groups); it resumes
from its newest complete checkpoint (`--resume_from_checkpoint True`) when it has one.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

from llava.coin import console, groups, layout, tasks
from llava.coin.console import ChainError, Log
from llava.coin.settings import GROUPED_CHAIN, Settings, from_env
from llava.train.checkpoints import CHECKPOINT_PREFIX, LLACA_STATE, last_complete_checkpoint
from llava.utils import atomic_write_text

PROJECTOR_HINT = "LLaVA-1.5's pretrain-only mm_projector.bin"
TRUE_WORDS = ("yes", "true", "t", "y", "1")  # transformers' HfArgumentParser reads these as True


@dataclass(frozen=True)
class TaskPlan:
    """What one training run starts from. output_dir, data: paths as the command line spells them; init_flag,
    init_path: `pretrain_mm_mlp_adapter` and the projector or `previous_task_model_path` and a task folder;
    batch: per device; resume: the newest complete checkpoint, else None; previous: the task before it in
    TASKS; group: the grouped chain's group.json, else None."""

    task: str
    output_dir: str
    data: str
    batch: str
    init_flag: str
    init_path: str
    resume: str | None = None
    previous: str | None = None
    group: groups.GroupRecord | None = None


def previous_task(s: Settings, name: str) -> str | None:
    """The task before `name` in TASKS (None for the first); ChainError when `name` is not in TASKS."""
    if name not in s.task_names:
        raise ChainError(f"task {name} is not in TASKS ({' '.join(s.task_names)}); the chain's order comes from TASKS")
    index = s.task_names.index(name)
    return s.task_names[index - 1] if index else None


def _skip(s: Settings, name: str, out: str, log: Log) -> None:
    log(f"{s.method}/{name}: DONE marker present, skipping (delete {out} to train it again)")


def _require_training_inputs(s: Settings, name: str, data: str) -> None:
    layout.require_file(data, f"training data of {name}",
                        f"DATA_ROOT={s.data_root} INSTRUCTION_TYPE={s.instruction_type}")
    layout.require_dir(s.image_root, "image folder (IMAGE_ROOT)", "the CoIN images, cl_dataset")
    layout.require_dir(s.base_lm, "base language model (BASE_LM)")
    layout.require_dir(s.vision_tower, "vision tower (VISION_TOWER)")
    layout.require_file(s.ds_config, "DeepSpeed config (DS_CONFIG)")


def _require_projector(s: Settings) -> None:
    layout.require_file(s.pretrain_projector, "pretrain projector (PRETRAIN_PROJECTOR)", PROJECTOR_HINT)


def plan_task(s: Settings, chain: str, name: str, *, decide: bool, log: Log) -> TaskPlan | None:
    """The plan of task `name` of `chain`, or None when it is DONE. ChainError when it cannot start: an
    unknown task, one not in TASKS, an unfinished predecessor, a missing input. For the grouped chain `decide`
    allows deciding the group (writing group.json) when it has not been decided yet."""
    if chain == "Multitask":
        return _plan_multitask(s, name, log)
    task = tasks.task(name)
    previous = previous_task(s, name)
    out = layout.task_dir(s, name)
    if layout.is_done(out):
        _skip(s, name, out, log)
        return None
    data = layout.train_file(s, name)
    if chain == GROUPED_CHAIN:
        return _plan_grouped(s, task, previous, data, decide, log)
    if previous is None:
        _require_projector(s)
        init = (groups.PROJECTOR_FLAG, s.pretrain_projector)
    else:
        previous_dir = layout.task_dir(s, previous)
        if not layout.is_done(previous_dir):
            raise ChainError(f"{name} starts from {previous}, which has not finished ({previous_dir}/{layout.DONE} "
                             f"missing). Train {previous} first (Train_all.sh runs the chain in order)")
        init = (groups.PREVIOUS_FLAG, previous_dir)
    _require_training_inputs(s, name, data)
    return TaskPlan(name, out, data, str(s.batch_size(task)), *init, last_complete_checkpoint(out), previous)


def _plan_multitask(s: Settings, name: str, log: Log) -> TaskPlan | None:
    if name != tasks.MULTITASK:
        raise ChainError(f"the Multitask chain has one task, {tasks.MULTITASK}, got '{name}'")
    out = layout.task_dir(s, name)
    if layout.is_done(out):
        _skip(s, name, out, log)
        return None
    _require_projector(s)
    data = layout.train_file(s, name)
    _require_training_inputs(s, name, data)
    return TaskPlan(name, out, data, s.multitask_batch_size, groups.PROJECTOR_FLAG, s.pretrain_projector,
                    last_complete_checkpoint(out))


def _plan_grouped(s: Settings, task: tasks.CoinTask, previous: str | None, data: str, decide: bool,
                  log: Log) -> TaskPlan:
    name, out = task.name, layout.task_dir(s, task.name)
    if previous and not layout.is_done(layout.task_dir(s, previous)):
        raise ChainError(f"{name} comes after {previous}, which has not finished ({layout.task_dir(s, previous)}/"
                         f"{layout.DONE} missing). Train {previous} first (Train_all.sh runs the chain in order)")
    layout.require_file(data, f"training data of {name}",
                        f"DATA_ROOT={s.data_root} INSTRUCTION_TYPE={s.instruction_type}")
    decision_file = groups.group_file(s, name)
    if os.path.isfile(decision_file):
        log(f"{s.method}/{name}: repeating the group decision stored in {decision_file}")
    elif decide:
        groups.decide(s, name, previous, data, log)
    else:
        raise ChainError(f"{decision_file} missing: the task's plan decides its group first")
    record = groups.GroupRecord.read(decision_file)
    if record.init_task:
        init = (groups.PREVIOUS_FLAG, layout.task_dir(s, record.init_task))
    else:
        init = (groups.PROJECTOR_FLAG, s.pretrain_projector)
    if (record.new_group_init, record.group_ema) != (s.new_group_init, s.group_ema):
        log(f"{s.method}/{name}: note: group.json was decided with NEW_GROUP_INIT={record.new_group_init} "
            f"GROUP_EMA={record.group_ema}; repeating it (delete {out} to decide again)")
    log(f"{s.method}/{name}: group {record.group} ({'new' if record.new else 'reused'}), from {init[0]} {init[1]} "
        f"({record.init_reason}), --llaca {record.llaca}")
    if record.init_task:
        if not layout.is_done(init[1]):
            raise ChainError(f"{name} starts from {init[1]}, which has not finished (no {layout.DONE} marker)")
    else:
        _require_projector(s)
    _require_training_inputs(s, name, data)
    return TaskPlan(name, out, data, str(s.batch_size(task)), *init, last_complete_checkpoint(out), previous,
                    record)


# --------------------------------------------------------------------------------------------- the plan

def shell_code(s: Settings, plan: TaskPlan, lines: list[str]) -> str:
    """Bash for `eval`: the progress lines, then the variables the per-task scripts' command line uses."""
    scalars = {
        "DEEPSPEED": s.deepspeed, "MASTER_PORT": s.master_port, "DS_CONFIG": s.ds_config, "LORA_R": s.lora_r,
        "LORA_ALPHA": s.lora_alpha, "MM_PROJECTOR_LR": s.mm_projector_lr, "BASE_LM": s.base_lm,
        "INIT_FLAG": f"--{plan.init_flag}", "INIT_PATH": plan.init_path, "DATA_ROOT": s.data_root,
        "INSTRUCTION_TYPE": s.instruction_type, "IMAGE_ROOT": s.image_root, "VISION_TOWER": s.vision_tower,
        "BF16": s.bf16, "OUTPUT_ROOT": s.output_root, "METHOD": s.method, "EPOCHS": s.epochs,
        "TASK_BATCH": plan.batch, "GRAD_ACCUM": s.grad_accum, "LR": s.lr, "TF32": s.tf32,
        "MODEL_MAX_LENGTH": s.model_max_length, "NUM_WORKERS": s.num_workers,
        "SAVE_STRATEGY": "steps" if s.save_steps else "epoch",
    }
    if plan.group is not None:
        scalars["LLACA"] = str(plan.group.llaca)
    arrays = {
        "GPU_FLAGS": ["--num_gpus", s.num_gpus] if s.num_gpus else ["--include", s.gpus],
        "SAVE_STEPS_FLAG": ["--save_steps", s.save_steps] if s.save_steps else [],
        "MAX_STEPS_FLAG": ["--max_steps", s.max_steps] if s.max_steps else [],
        "LORA_TARGETS_FLAG": ["--lora_targets", s.lora_targets] if s.lora_targets else [],
        "RESUME_FLAG": ["--resume_from_checkpoint", "True"] if plan.resume else [],
        "EXTRA_TRAIN_FLAGS": list(s.extra_train_args),
    }
    code = [f"echo {shlex.quote(line)}" for line in lines]
    code += [f"{name}={shlex.quote(value)}" for name, value in scalars.items()]
    code += [f"{name}=({' '.join(shlex.quote(v) for v in values)})" for name, values in arrays.items()]
    return "\n".join(code) + "\n"


# ---------------------------------------------------------------------------------------------- the run

def flag_value(command: list[str], flag: str) -> str | None:
    """The value the last `flag` of `command` gives (`--flag V` or `--flag=V`; a bare `--flag`: "True")."""
    value = None
    for index, word in enumerate(command):
        if word == flag:
            following = command[index + 1] if index + 1 < len(command) else "--"
            value = "True" if following.startswith("--") else following
        elif word.startswith(flag + "="):
            value = word[len(flag) + 1:]
    return value


def llaca_on(command: list[str]) -> bool:
    """True when the command trains with the EMA (`--llaca`, or its alias `--dema`, which wins when given)."""
    value = flag_value(command, "--dema") or flag_value(command, "--llaca")
    return value is not None and value.lower() in TRUE_WORDS


def missing_outputs(output_dir: str, llaca: bool) -> list[str]:
    """The files of a finished LoRA run (upstream layout, and llaca_state.pt with the EMA) that are absent."""
    missing = [f for f in ("adapter_config.json", "non_lora_trainables.bin", "config.json")
               if not os.path.isfile(f"{output_dir}/{f}")]
    if not any(os.path.isfile(f"{output_dir}/{f}") for f in ("adapter_model.safetensors", "adapter_model.bin")):
        missing.append("adapter_model.safetensors")
    if llaca and not os.path.isfile(f"{output_dir}/{LLACA_STATE}"):
        missing.append(LLACA_STATE)
    return missing


def tee(command: list[str], log_path: str) -> int:
    """Run `command`, its output (stdout and stderr) to ours and to `log_path`, whose first line is the command
    itself; returns its exit status (127 when it cannot start). SIGTERM is passed on to it; SIGINT reaches it
    from the terminal with ours, so we only wait for it to end."""
    with open(log_path, "wb") as sink:
        sink.write((shlex.join(command) + "\n").encode())
        sink.flush()
        try:
            child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        except OSError as err:
            message = f"cannot run {command[0]}: {err}\n".encode()
            sink.write(message)
            sys.stdout.buffer.write(message)
            return 127
        previous = {signal.SIGTERM: signal.signal(signal.SIGTERM, lambda *_: child.terminate()),
                    signal.SIGINT: signal.signal(signal.SIGINT, signal.SIG_IGN)}
        try:
            while chunk := os.read(child.stdout.fileno(), 65536):
                sys.stdout.buffer.write(chunk)
                sys.stdout.buffer.flush()
                sink.write(chunk)
                sink.flush()
            return child.wait()
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)


def run_task(s: Settings, chain: str, name: str, command: list[str], log: Log) -> None:
    """Run a planned task's `command` and, when it succeeds and left every output, write DONE (last)."""
    plan = plan_task(s, chain, name, decide=False, log=console.quiet)
    if plan is None:
        _skip(s, name, layout.task_dir(s, name), log)
        return
    given = flag_value(command, "--output_dir")
    if given != plan.output_dir:
        raise ChainError(f"the command's --output_dir is {given}, not the task's folder {plan.output_dir} "
                         "(OUTPUT_ROOT/METHOD/<Task>): DONE, the next task and the evaluation read that folder")
    os.makedirs(plan.output_dir, exist_ok=True)
    os.makedirs(layout.logs_dir(s), exist_ok=True)
    log_path = f"{layout.logs_dir(s)}/{name}.{time.strftime('%Y%m%d-%H%M%S')}.{os.getpid()}.log"
    where = f"{s.method}/{name}"
    if plan.resume:
        log(f"{where}: resuming from {plan.resume} (no DONE marker; newest complete Trainer checkpoint)")
    else:
        log(f"{where}: training from {plan.init_flag} {plan.init_path}")
    log(f"{where}: batch {plan.batch} per device, log {log_path}")
    if tee(command, log_path) != 0:
        raise ChainError(f"{where}: training failed (log: {log_path}). Rerun the same script to continue: finished "
                         "tasks are skipped, this one resumes from its newest complete checkpoint if it has one")
    missing = missing_outputs(plan.output_dir, llaca_on(command))
    if missing:
        raise ChainError(f"{where}: training exited 0 but {plan.output_dir} lacks {' '.join(missing)}; not marking "
                         f"it DONE (log: {log_path})")
    if plan.group is not None:
        groups.commit(s, name, plan.previous, plan.group.group, plan.data, log)
    if not s.keep_checkpoints:
        for entry in os.listdir(plan.output_dir):
            if entry.startswith(CHECKPOINT_PREFIX):
                path = f"{plan.output_dir}/{entry}"
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path)
                else:
                    os.unlink(path)
    marker = [f"task={name}", f"method={s.method}", f"init={plan.init_flag} {plan.init_path}"]
    if plan.resume:
        marker.append(f"resumed_from={plan.resume}")
    if plan.group is not None:
        marker.append(f"group={plan.group.group} new={plan.group.new} llaca={plan.group.llaca}")
    marker += [f"finished={datetime.datetime.now().astimezone().isoformat(timespec='seconds')}", f"log={log_path}"]
    atomic_write_text(f"{plan.output_dir}/{layout.DONE}", "\n".join(marker) + "\n")
    log(f"{where}: done -> {plan.output_dir}")


def run_chain(s: Settings, chain_dir: str, log: Log) -> int:
    """Every task of TASKS in order, each by its own script in `chain_dir` (as CoIN's Train_all.sh); the first
    failing script's exit status, else 0."""
    count = len(s.tasks)
    log(f"chain {s.method}: {count} tasks ({' '.join(s.task_names)}) -> {layout.method_dir(s)}")
    for number, task in enumerate(s.tasks, 1):
        log(f"chain {s.method}: task {number}/{count} {task.name}")
        status = subprocess.call(["bash", f"{chain_dir}/{task.train_script}"])
        if status:
            return status
    log(f"chain {s.method}: all {count} tasks done")
    return 0


# --------------------------------------------------------------------------------------------- command line

def _plan_command(chain: str, name: str) -> None:
    lines: list[str] = []
    try:
        with contextlib.redirect_stdout(sys.stderr):  # stdout is the shell code
            s = from_env(chain=chain)
            plan = plan_task(s, chain, name, decide=True, log=lambda m: lines.append(console.line(m)))
    except BaseException:
        for line in lines:  # what happened before the error
            print(line, file=sys.stderr, flush=True)
        raise
    if plan is None:
        print("".join(f"echo {shlex.quote(line)}\n" for line in lines) + "exit 0")
    else:
        print(shell_code(s, plan, lines), end="")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command: list[str] = []
    if "--" in argv:
        split = argv.index("--")
        argv, command = argv[:split], argv[split + 1:]
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="action", required=True)
    for action in ("plan", "run"):
        one = sub.add_parser(action)
        one.add_argument("chain")
        one.add_argument("task")
    chain = sub.add_parser("chain")
    chain.add_argument("chain")
    chain.add_argument("directory", help="the folder of the chain's per-task scripts")
    args = parser.parse_args(argv)
    if (args.action == "run") != bool(command):
        parser.error("`run CHAIN TASK -- COMMAND...` takes the command after --; the other actions take none")
    if args.action == "plan":
        _plan_command(args.chain, args.task)
        return 0
    s = from_env(chain=args.chain)
    if args.action == "run":
        run_task(s, args.chain, args.task, command, console.log)
        return 0
    return run_chain(s, args.directory, console.log)


if __name__ == "__main__":
    console.run_cli(main)
