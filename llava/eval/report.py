"""Benchmark report over seeds: the figures of every method (mean ± std), per-task final accuracies, plots, and
the LLaCA coefficient statistics read from `llaca_log.jsonl`.

    python -m llava.eval.report --runs RUN_DIR [RUN_DIR ...] --methods LoRA FixedEMA LLaCA ... --out OUT
        [--one-row Zero_shot Multitask] [--title T] [--note TEXT ...]

Each RUN_DIR is one seed's chain output: `RUN_DIR/results/<METHOD>/summary.json` (from `llava.eval.matrix`),
`RUN_DIR/results/<ONE_ROW>/<Task>/score.json` for one-row baselines, and `RUN_DIR/checkpoints/<METHOD>/<Task>/`
with `llaca_log.jsonl` and `llaca_drift.json` where the plugin ran. Writes OUT/report.md, OUT/report.json,
OUT/figures.png, OUT/forgetting_curves.png and OUT/coefficients.png. Accuracies are percentages.

Rows that differ in one thing (`llava.coin.methods.DECOMPOSITION`) are compared seed by seed: the forgetting a
change removes and the New it costs, mean ± std of the per-seed differences, called noise where the mean is
smaller than the seeds' spread (the larger std of the two rows).

The coefficient section also places the runs in the formula's regime. k = c·(1 + G)/(d·H) with G = ‖g‖₁,
d = ‖θ−θ*‖₁, H = ‖g − g_prev‖₁ is not scale-free: with per-element magnitudes fixed it falls as 1/(numel × step
size), since G, d and H each grow with numel and d with the step size. `--reference-numel` and
`--reference-lr` (LLaVA-7B LoRA r128: 524,288 elements per LoRA matrix, lr 2e-4) estimate what k the same
per-element gradients and distances would give on the reference tensors, and which multiplier c would put the
runs' tensors at that level.
"""
from __future__ import annotations

import argparse
import io
import json
import math
import statistics
from pathlib import Path

from llava.coin.methods import DECOMPOSITION, TABLE
from llava.eval.forgetting_shape import seed_shape, shape_lines
from llava.eval.matrix import FIGURE_LABELS
from llava.utils import atomic_write_bytes, atomic_write_json, atomic_write_text

REPORTED = ["avg", "new", "forgetting", "bwt", "maa"]


def mean_std(values: list[float | None]) -> tuple[float | None, float | None, int]:
    """(mean, sample std, count) of the non-null values; std is 0 for one value; (None, None, 0) for none."""
    present = [v for v in values if v is not None]
    if not present:
        return None, None, 0
    return statistics.fmean(present), (statistics.stdev(present) if len(present) > 1 else 0.0), len(present)


def fmt(mean: float | None, std: float | None, n: int, seeds: int) -> str:
    """'mean ± std' over the n seeds that gave a value ('mean' for one), marked '(n/seeds)' when fewer than the
    report's seeds did (a method run on fewer seeds, or a matrix left incomplete)."""
    if mean is None:
        return "–"
    text = f"{mean:.1f} ± {std:.1f}" if n > 1 else f"{mean:.1f}"
    return text + (f" ({n}/{seeds})" if n < seeds else "")


def read_json(path: Path):
    with open(path) as f:
        return json.load(f)


def one_row(run: Path, name: str, tasks: list[str]) -> list[float | None]:
    """A one-row baseline's accuracy per task (None where not scored)."""
    out = []
    for task in tasks:
        path = run / "results" / name / task / "score.json"
        out.append(read_json(path)["accuracy"] if path.is_file() else None)
    return out


def read_log(path: Path) -> list[dict]:
    """The JSON lines of a coefficient log (a partial last line, left by a killed run, is skipped)."""
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return out


def quantiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"median": None, "p10": None, "p90": None}
    ordered = sorted(values)

    def at(q: float) -> float:
        pos = q * (len(ordered) - 1)
        lo, hi = math.floor(pos), math.ceil(pos)
        return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)

    return {"median": at(0.5), "p10": at(0.1), "p90": at(0.9)}


def coefficient_stats(records: list[dict], counts: dict[str, int], reference_numel: int, lr_ratio: float,
                      c: float) -> dict:
    """Raw and applied distributions over the logged tensor-step records; outcome fractions from the plugin's
    cumulative counts (every step, not only the logged ones); the regime estimate."""
    raw = [r["raw"] for r in records if r["raw"] is not None]
    applied = [r["applied"] for r in records if r["applied"] is not None]
    total = sum(counts.values())
    estimates = []
    for r in records:
        if not (r["raw"] and r["d"] and r["H"] and r["G"] is not None):
            continue
        n = r["numel"]
        g, d, h = r["G"] / n, r["d"] / n, r["H"] / n  # per-element magnitudes
        estimates.append(c * (1 + reference_numel * g) / (reference_numel ** 2 * d * lr_ratio * h))
    q_raw, q_ref = quantiles(raw), quantiles(estimates)
    equivalent_c = c * q_ref["median"] / q_raw["median"] if q_raw["median"] and q_ref["median"] else None
    return {"tensor_steps": total, "logged_tensor_steps": len(records), "raw": q_raw, "applied": quantiles(applied),
            **{f"{k}_fraction": (counts[k] / total if total else None) for k in ("in_range", "fallback", "skipped")},
            "reference_k": q_ref, "equivalent_multiplier": equivalent_c}


def coefficient_section(runs: list[Path], method: str, tasks: list[str], args) -> dict:
    """Per task, over seeds and logged steps: the coefficient statistics, and (numel, raw k) samples to plot."""
    per_task, samples, saved = {}, [], {}  # saved: the run's LLaCA config (first llaca_state.pt found)
    for task in tasks:
        records, counts = [], {"in_range": 0, "fallback": 0, "skipped": 0}
        for run in runs:
            log = run / "checkpoints" / method / task / "llaca_log.jsonl"
            if not log.is_file():
                continue
            lines = read_log(log)
            for line in lines:
                records.extend(line["tensors"])
            if lines:
                for key in counts:
                    counts[key] += int(lines[-1]["summary"][key])
            config = run / "checkpoints" / method / task / "llaca_state.pt"
            if not saved and config.is_file():
                import torch

                saved = torch.load(config, map_location="cpu", weights_only=False)["config"]
        if records:
            per_task[task] = coefficient_stats(records, counts, args.reference_numel, args.reference_lr / args.lr,
                                               saved.get("multiplier", 2.0))
            samples += [(r["numel"], r["raw"]) for r in records if r["raw"]]
    return {"multiplier": saved.get("multiplier"), "mode": saved.get("mode"),
            "fixed_weight": saved.get("fallback_new_weight"), "tasks": per_task, "samples": samples}


def collect(runs: list[Path], methods: list[str], one_rows: list[str], tasks: list[str] | None = None) -> dict:
    """The table over runs: chain methods from their summary.json, one-row baselines from their score files. The
    task order is `tasks`, else the first chain summary's."""
    by_run = {m: [read_json(run / "results" / m / "summary.json")
                  if (run / "results" / m / "summary.json").is_file() else None for run in runs] for m in methods}
    summaries = {m: [s for s in items if s is not None] for m, items in by_run.items()}
    tasks = tasks or next((s[0]["tasks"] for s in summaries.values() if s), None)
    if tasks is None:
        raise FileNotFoundError(f"no summary.json for any of {methods} under {[str(r) for r in runs]}, and no "
                                "--tasks to report the one-row baselines by")
    table = {}
    for method, items in summaries.items():
        table[method] = {f: mean_std([s[f] for s in items]) for f in REPORTED}
        table[method]["per_seed"] = {f: [s[f] if s is not None else None for s in by_run[method]]
                                     for f in ("forgetting", "new", "avg")}
        table[method]["final"] = [mean_std([s["matrix"][-1][i] if len(s["matrix"]) == len(tasks) else None
                                            for s in items]) for i in range(len(tasks))]
        table[method]["curves"] = [[mean_std([s["matrix"][j][i] if j < len(s["matrix"]) else None for s in items])[0]
                                    for j in range(len(tasks))] for i in range(len(tasks))]
        table[method]["seeds"] = len(items)
    for name in one_rows:
        rows = [one_row(run, name, tasks) for run in runs]
        per_task = [mean_std([row[i] for row in rows]) for i in range(len(tasks))]
        avgs = [statistics.fmean(row) if all(v is not None for v in row) else None for row in rows]
        table[name] = {"avg": mean_std(avgs), "final": per_task, "seeds": len(runs), "one_row": True}
    if not any(holds_results(table[name]) for name in methods + one_rows):
        raise FileNotFoundError(f"no results of {methods + one_rows} under {[str(r) for r in runs]}: nothing to report")
    return {"tasks": tasks, "table": table}


def holds_results(row: dict | None) -> bool:
    """Whether a table row has any result: a chain row at least one seed's summary, a one-row baseline at least one
    task's score."""
    if row is None:
        return False
    return any(cell[2] for cell in row["final"]) if row.get("one_row") else bool(row["seeds"])


def row_name(name: str, row: dict) -> str:
    """The name a table shows: marked † when the row is carried from an earlier report."""
    return f"{name} †" if row.get("carried") else name


def carry(report: dict, previous: dict, source: str, names: list[str]) -> list[str]:
    """Copy into `report` the rows of `previous` (an earlier report.json over the same tasks) for those of `names`
    that these runs hold no result of, with their coefficient sections; each copied row is marked
    `"carried": source`. Returns the names copied. Carried rows hold means and stds, not per-seed values, so the
    decomposition compares them unpaired."""
    if previous["tasks"] != report["tasks"]:
        raise ValueError(f"{source}: its tasks {previous['tasks']} are not this report's {report['tasks']}; "
                         "rows are carried only between reports over the same tasks")
    table, copied = report["table"], []
    for name in names:
        if not holds_results(table.get(name)) and name in previous["table"]:
            table[name] = {**previous["table"][name], "carried": source}
            if name in previous.get("coefficients", {}):
                report["coefficients"][name] = {**previous["coefficients"][name], "carried": source}
            copied.append(name)
    return copied


def drift_section(runs: list[Path], method: str, tasks: list[str]) -> dict:
    """Per task, mean over the seeds that logged it: moved (Σ‖θ_T − θ_0‖₁ / Σ‖θ_0‖₁), followed (Σ‖θ*_T − θ_0‖₁ /
    Σ‖θ_T − θ_0‖₁), ema_unchanged (bf16 EMAs: share of elements at their first value), and the seed count."""
    out = {}
    for task in tasks:
        logs = [read_json(path) for run in runs
                if (path := run / "checkpoints" / method / task / "llaca_drift.json").is_file()]
        if logs:
            out[task] = {key: mean_std([log.get(key) for log in logs])[0]
                         for key in ("moved", "followed", "ema_unchanged")}
            out[task]["seeds"] = len(logs)
    return out


def shape_section(runs: list[Path], method: str = "LoRA") -> dict:
    """`method`'s forgetting shape per run (None for a run without its finished chain), checked against real CoIN's
    with the run's multitask scores where it has them; empty when no run holds the chain."""
    seeds = []
    for run in runs:
        path = run / "results" / method / "summary.json"
        summary = read_json(path) if path.is_file() else None
        if summary is None or len(summary["matrix"]) != len(summary["tasks"]):
            seeds.append(None)
            continue
        multitask = one_row(run, "Multitask", summary["tasks"])
        seeds.append(seed_shape(summary, None if None in multitask else multitask))
    return {"method": method, "seeds": seeds} if any(seeds) else {}


def paired(table: dict, row: str, base: str, figure: str) -> tuple[float | None, float | None, int]:
    """mean ± std over seeds of figure(row) − figure(base), pairing the runs of the same seed."""
    a, b = table[row]["per_seed"][figure], table[base]["per_seed"][figure]
    return mean_std([x - y if x is not None and y is not None else None for x, y in zip(a, b)])


def unpaired(table: dict, row: str, base: str, figure: str) -> tuple[float | None, float | None, int]:
    """mean(row) − mean(base) with std √(std_row² + std_base²), for rows without per-seed values (carried rows);
    the count is the smaller of the two seed counts."""
    (ma, sa, na), (mb, sb, nb) = table[row][figure], table[base][figure]
    if ma is None or mb is None:
        return None, None, 0
    return ma - mb, math.hypot(sa or 0.0, sb or 0.0), min(na, nb)


def decomposition(table: dict) -> list[dict]:
    """The `DECOMPOSITION` pairs present in the table: forgetting removed (F(base) − F(row)) and New gained
    (New(row) − New(base)), paired by seed where both rows hold per-seed values, else unpaired (`unpaired`);
    noise where |mean removed| is under the seeds' spread."""
    out = []
    for label, row, base in DECOMPOSITION:
        if not all(name in table and not table[name].get("one_row") and holds_results(table[name])
                   for name in (row, base)):
            continue
        is_paired = "per_seed" in table[row] and "per_seed" in table[base]
        compare = paired if is_paired else unpaired
        removed = compare(table, base, row, "forgetting")
        new = compare(table, row, base, "new")
        spread = max(table[row]["forgetting"][1] or 0.0, table[base]["forgetting"][1] or 0.0)
        out.append({"change": label, "row": row, "base": base, "forgetting_removed": removed, "new_gained": new,
                    "spread": spread, "paired": is_paired, "noise": removed[0] is None or abs(removed[0]) < spread})
    return out


def markdown(report: dict, methods: list[str], one_rows: list[str], seeds: int, args) -> str:
    tasks, table = report["tasks"], report["table"]
    lines = [f"# {args.title}", ""] + [f"{note}" for note in args.note] + [""] if args.note else [f"# {args.title}", ""]
    lines += [f"{seeds} seed(s); mean ± sample standard deviation over seeds; accuracies in percent.", "",
              "| method | " + " | ".join(FIGURE_LABELS[f] for f in REPORTED) + " |",
              "|---|" + "---|" * len(REPORTED)]
    for name in one_rows + methods:
        row = table.get(name)
        if row is None:
            continue
        cells = [fmt(*row[f], seeds) if f in row else "–" for f in REPORTED]
        lines.append(f"| {row_name(name, row)} | " + " | ".join(cells) + " |")
    sources = sorted({row["carried"] for row in table.values() if row.get("carried")})
    if sources:
        lines += ["", "† carried from " + ", ".join(f"`{s}`" for s in sources) + ": these runs hold no result of "
                  "the row, so its figures (and coefficient section) are that report's, made by the commands its "
                  "note names; it holds means, not per-seed values, so comparisons with it are unpaired."]
    lines += ["", "Final accuracy per task (after the last stage; one-row baselines: their only row):", "",
              "| method | " + " | ".join(tasks) + " |", "|---|" + "---|" * len(tasks)]
    for name in one_rows + methods:
        row = table.get(name)
        if row is not None:
            lines.append(f"| {row_name(name, row)} | " + " | ".join(fmt(*cell, seeds) for cell in row["final"]) + " |")
    if report.get("shape"):
        lines += shape_lines(report["shape"]["method"], report["shape"]["seeds"])
    lines += ablation_lines(report, seeds)
    lines += decomposition_lines(report["decomposition"])
    lines += drift_lines(report["drift"])
    for method, section in report["coefficients"].items():
        if not section["tasks"]:
            continue
        rule = (f"fixed EMA: applied {section['fixed_weight']} at every step; raw k, logged for comparison, with "
                f"c = {section['multiplier']}"
                if section.get("mode") == "fixed" else f"multiplier c = {section['multiplier']}")
        carried = f"; carried from `{section['carried']}`" if section.get("carried") else ""
        lines += ["", f"## Coefficients: {method} ({rule}{carried})", "",
                  "Over every logged step and tensor. raw = k before the range check; applied = weight given to the "
                  "new weights (the fallback when k is outside (0, 1)).", "",
                  "| task | tensor-steps | raw median [p10, p90] | applied median [p10, p90] | in range | fallback | "
                  "skipped | k on 7B-size tensors (est.) | c for 7B-like k |", "|---|---|---|---|---|---|---|---|---|"]
        for task, s in section["tasks"].items():
            lines.append(
                f"| {task} | {s['tensor_steps']} | {_q(s['raw'])} | {_q(s['applied'])} | "
                f"{_pct(s['in_range_fraction'])} | {_pct(s['fallback_fraction'])} | {_pct(s['skipped_fraction'])} | "
                f"{_g(s['reference_k']['median'])} | {_g(s['equivalent_multiplier'])} |")
    lines += ["", "Figures: `figures.png` (Avg, New, Forgetting per method), `forgetting_curves.png` (each task's mean "
              "accuracy across stages), `coefficients.png` (raw k against tensor size)."]
    return "\n".join(lines) + "\n"


ABLATION = [(m.name, m.label) for m in TABLE if m.label]


def decomposition_lines(rows: list[dict]) -> list[str]:
    if not rows:
        return []
    lines = ["", "## Where the forgetting removed comes from", "",
             "Each line compares two rows that differ in one thing, seed by seed (mean ± std of the per-seed "
             "differences); a row carried from an earlier report holds no per-seed values, and its comparisons are "
             "unpaired (difference of the means ± the root sum of squares of the stds). Noise: the mean is smaller "
             "than the seeds' spread (the larger Forgetting std of the two rows).", "",
             "| what is added | rows | forgetting removed (points) | New gained (points) | |", "|---|---|---|---|---|"]
    for r in rows:
        removed, new = r["forgetting_removed"], r["new_gained"]
        remarks = ([] if r["paired"] else ["unpaired"]) + (
            [f"noise (spread {r['spread']:.1f})"] if r["noise"] else [])
        lines.append(f"| {r['change']} | `{r['row']}` vs `{r['base']}` | {fmt(*removed, removed[2])} | "
                     f"{fmt(*new, new[2])} | {'; '.join(remarks)} |")
    return lines


def drift_lines(drift: dict) -> list[str]:
    if not drift:
        return []
    lines = ["", "## What the EMA did, per task", "",
             "moved: Σ‖θ_T − θ_0‖₁ / Σ‖θ_0‖₁ over the trainable tensors (θ_0 at the task's start, θ_T the live "
             "weights at its end); followed: Σ‖θ*_T − θ_0‖₁ / Σ‖θ_T − θ_0‖₁ (θ*_T the EMA swapped in: 1 = as far "
             "from the start as training went, 0 = the start kept); unchanged: share of a bf16 EMA's elements still "
             "at their first value. Mean over seeds.", ""]
    for method, tasks in drift.items():
        lines += [f"| {method} | " + " | ".join(tasks) + " |", "|---|" + "---|" * len(tasks)]
        for key, label in (("moved", "moved"), ("followed", "followed"), ("ema_unchanged", "unchanged")):
            if any(t[key] is not None for t in tasks.values()):
                lines.append(f"| {label} | " + " | ".join(_g(t[key]) for t in tasks.values()) + " |")
        lines.append("")
    return lines


def ablation_lines(report: dict, seeds: int) -> list[str]:
    """The paper's ablation rows (when the grouped chains were run), and how much of sequential LoRA's
    forgetting each part removes: F(LoRA) − F(row), in points."""
    table = report["table"]
    if not {"LoRA", "Grouped_LLaCA", "Grouped_LoRA"} <= set(table):
        return []
    base = table["LoRA"]["forgetting"][0]
    lines = ["", "## Ablation: what the EMA does and what grouping does", "",
             "| row | Avg | Forgetting | New | BWT | forgetting removed (points) |", "|---|---|---|---|---|---|"]
    for name, label in ABLATION:
        row = table.get(name)
        if row is None:
            continue
        forgetting = row["forgetting"][0]
        removed = "–" if base is None or forgetting is None else f"{base - forgetting:.1f}"
        lines.append(f"| {label} (`{name}`) | " + " | ".join(fmt(*row[f], seeds)
                                                          for f in ("avg", "forgetting", "new", "bwt"))
                     + f" | {removed} |")
    return lines


def _g(x) -> str:
    return "–" if x is None else f"{x:.3g}"


def _q(q: dict) -> str:
    return "–" if q["median"] is None else f"{q['median']:.3g} [{q['p10']:.3g}, {q['p90']:.3g}]"


def _pct(x) -> str:
    return "–" if x is None else f"{100 * x:.1f} %"


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return buffer.getvalue()


def figures_png(report: dict, names: list[str]) -> bytes:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(2.2 + 1.3 * len(names), 3.6))
    ax = fig.subplots()
    width = 0.8 / 3
    for k, figure in enumerate(["avg", "new", "forgetting"]):
        means = [(report["table"].get(n, {}).get(figure) or (None,))[0] for n in names]
        stds = [(report["table"].get(n, {}).get(figure) or (None, None))[1] for n in names]
        xs = [i + (k - 1) * width for i in range(len(names))]
        ax.bar(xs, [m or 0 for m in means], width, yerr=[s or 0 for s in stds], label=FIGURE_LABELS[figure], capsize=2)
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
    ax.set_ylabel("percent")
    ax.legend(fontsize=8)
    return _png(fig)


def curves_png(report: dict, methods: list[str]) -> bytes:
    from matplotlib.figure import Figure

    tasks = report["tasks"]
    fig = Figure(figsize=(3.2 * len(methods), 3.2))
    axes = fig.subplots(1, len(methods), squeeze=False)[0]
    for ax, method in zip(axes, methods):
        for i, task in enumerate(tasks):
            curve = report["table"][method]["curves"][i]
            xs = [j + 1 for j in range(len(tasks)) if j >= i and curve[j] is not None]
            ax.plot(xs, [curve[j - 1] for j in xs], marker="o", ms=3, label=task)
        ax.set_title(method, fontsize=9)
        ax.set_xlabel("after stage")
        ax.set_ylim(-2, 102)
    axes[0].set_ylabel("accuracy (%)")
    axes[-1].legend(fontsize=6, loc="upper right")
    return _png(fig)


def coefficients_png(report: dict) -> bytes:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 3.6))
    ax = fig.subplots()
    for method, section in report["coefficients"].items():
        if section.get("samples"):  # a carried section holds no samples
            xs, ys = zip(*section["samples"])
            ax.scatter(xs, ys, s=3, alpha=0.3, label=method)
    ax.axhline(1.0, color="k", lw=0.8, ls="--")
    if not ax.collections:
        ax.text(0.5, 0.5, "no coefficient logs", ha="center", transform=ax.transAxes)
        return _png(fig)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("tensor size (elements)")
    ax.set_ylabel("raw k (in range: below the dashed line)")
    ax.legend(fontsize=7, markerscale=3)
    return _png(fig)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", nargs="+", type=Path, required=True)
    parser.add_argument("--methods", nargs="*", default=[], help="chain methods (none: a report of --one-row only)")
    parser.add_argument("--one-row", nargs="*", default=["Zero_shot", "Multitask"])
    parser.add_argument("--tasks", nargs="*", default=None, help="task order (default: the chains' summaries')")
    parser.add_argument("--llaca-methods", nargs="*", default=None,
                        help="methods whose coefficient logs to summarise (default: every method with a log)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--title", default="Benchmark report")
    parser.add_argument("--note", nargs="*", default=[])
    parser.add_argument("--lr", type=float, default=2e-4, help="the runs' LoRA learning rate")
    parser.add_argument("--reference-lr", type=float, default=2e-4)
    parser.add_argument("--reference-numel", type=int, default=4096 * 128)
    parser.add_argument("--carry", type=Path, default=None, metavar="REPORT_JSON",
                        help="an earlier report.json: its rows of the requested methods that these runs hold no "
                             "result of are copied in, marked † (carried), and compared unpaired")
    args = parser.parse_args(argv)
    report = collect(args.runs, args.methods, args.one_row, args.tasks)
    llaca = args.llaca_methods if args.llaca_methods is not None else args.methods
    report["coefficients"] = {m: coefficient_section(args.runs, m, report["tasks"], args) for m in llaca}
    report["coefficients"] = {m: s for m, s in report["coefficients"].items() if s["tasks"]}
    if args.carry is not None:
        copied = carry(report, read_json(args.carry), str(args.carry), args.one_row + args.methods)
        print(f"carried from {args.carry}: {' '.join(copied) or 'no row'}")
    report["drift"] = {m: d for m in llaca if (d := drift_section(args.runs, m, report["tasks"]))}
    report["decomposition"] = decomposition(report["table"])
    report["shape"] = shape_section(args.runs) if "LoRA" in args.methods else {}
    args.out.mkdir(parents=True, exist_ok=True)
    names = [n for n in args.one_row + args.methods if n in report["table"]]
    atomic_write_text(args.out / "report.md", markdown(report, args.methods, args.one_row, len(args.runs), args))
    atomic_write_bytes(args.out / "figures.png", figures_png(report, names))
    chains = [m for m in args.methods if m in report["table"] and report["table"][m]["seeds"]]
    if chains:
        atomic_write_bytes(args.out / "forgetting_curves.png", curves_png(report, chains))
    else:
        print("no chain methods in this report: no forgetting_curves.png")
    atomic_write_bytes(args.out / "coefficients.png", coefficients_png(report))
    slim = {**report, "coefficients": {m: {k: v for k, v in s.items() if k != "samples"}
                                       for m, s in report["coefficients"].items()}}
    atomic_write_json(args.out / "report.json", slim)
    print(f"wrote {args.out}/report.md")
    return report


if __name__ == "__main__":
    main()
