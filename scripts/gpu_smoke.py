"""GPU smoke check: the tiny model through the GPU code paths, end to end.

    python scripts/gpu_smoke.py --out DIR [--stages 0 2 3]

For each DeepSpeed ZeRO stage: train LoRA + LLaCA in bf16 with `llava/train/train_mem.py` on the colour dataset,
then answer its test file in fp16 with a CoIN inference script and score it. Prints one line per stage (device,
EMA dtype, in-range/fallback counts, accuracy, wall time) and exits 1 if a stage fails or scores below 75 %.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from playground.colour_data import train_args, write_colour_data  # noqa: E402


def sh(cmd: list[str], log: Path) -> float:
    start = time.time()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
               HF_HUB_OFFLINE="1")
    with open(log, "w") as f:
        proc = subprocess.run(cmd, cwd=REPO, env=env, stdout=f, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        print(log.read_text()[-3000:])
        raise SystemExit(f"failed: {' '.join(cmd)}")
    return time.time() - start


def check_stage(stage: int, tiny: Path, data: Path, out: Path) -> dict:
    import torch

    run_dir = out / f"zero{stage}"
    seconds = sh([sys.executable, "llava/train/train_mem.py",
                  *train_args(tiny, data, run_dir, "--deepspeed", f"scripts/zero{stage}.json", "--bf16", "True",
                              "--num_train_epochs", "8", "--learning_rate", "5e-3", "--mm_projector_lr", "5e-3",
                              "--llaca", "True", "--llaca_log_steps", "4")], out / f"train{stage}.log")
    state = torch.load(run_dir / "llaca_state.pt", weights_only=False)
    answers = out / f"answers{stage}.jsonl"
    sh([sys.executable, "-m", "llava.eval.CoIN.model_vqa_cc_instruction", "--model-path", str(run_dir),
        "--model-base", str(tiny / "lm"), "--question-file", str(data / "test.json"), "--image-folder", str(data),
        "--answers-file", str(answers), "--temperature", "0", "--batch-size", "4"], out / f"eval{stage}.log")
    truth = {q["question_id"]: q["answer"] for q in json.loads((data / "test.json").read_text())}
    lines = [json.loads(x) for x in answers.read_text().splitlines()]
    accuracy = 100.0 * sum(line["text"] == truth[line["question_id"]] for line in lines) / len(truth)
    return {"stage": stage, "device": "cuda" if torch.cuda.is_available() else "cpu",
            "ema_dtype": str(next(iter(state["ema"].values())).dtype), "counts": state["counts"],
            "accuracy": accuracy, "train_s": round(seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("/tmp/gpu_smoke"))
    parser.add_argument("--stages", type=int, nargs="+", default=[0, 2, 3])
    args = parser.parse_args()
    import torch

    from llava.model.tiny import build_tiny

    print(f"torch {torch.__version__}, cuda available: {torch.cuda.is_available()}"
          + (f" ({torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else ""))
    args.out.mkdir(parents=True, exist_ok=True)
    tiny = build_tiny(args.out / "tiny", size="test")
    data = write_colour_data(args.out / "data", n_train=48)
    failed = False
    for stage in args.stages:
        result = check_stage(stage, tiny, data, args.out)
        print(json.dumps(result), flush=True)
        failed |= result["accuracy"] < 75.0 or result["ema_dtype"] != "torch.float32"
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
