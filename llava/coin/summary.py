"""The few lines a one-seed run ends with: each method's Avg / New / Forgetting from its report, and how large a
difference must be to mean anything, read from a benchmark report over seeds.

    python -m llava.coin.summary OUT/report.json --methods LoRA LLaCA --benchmark results/mini_coin/report.json

The noise level is the rule the benchmark's decomposition uses: the larger seed-to-seed standard deviation of the
methods' Forgetting in the benchmark report; a one-seed difference below it is noise.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def rows(report: dict, methods: list[str]) -> list[str]:
    table = report["table"]
    missing = [m for m in methods if m not in table]
    if missing:
        raise ValueError(f"no row for {missing} in the report (rows: {sorted(table)})")
    out = [f"{'method':<8} {'Avg':>6} {'New':>6} {'Forgetting':>11}"]
    for method in methods:
        row = table[method]
        out.append(f"{method:<8} {row['avg'][0]:>6.1f} {row['new'][0]:>6.1f} {row['forgetting'][0]:>11.1f}")
    return out


def noise_line(benchmark: dict, methods: list[str], where: str) -> str:
    """One sentence: the seeds' spread of these methods' Forgetting in the benchmark, and where its table is."""
    table = benchmark["table"]
    spreads = {m: table[m]["forgetting"][1] for m in methods if m in table and table[m]["forgetting"][1] is not None}
    if not spreads:
        raise ValueError(f"the benchmark report has no Forgetting spread for {methods}")
    seeds = min(table[m]["forgetting"][2] for m in spreads)
    spread = max(spreads.values())
    detail = ", ".join(f"{m} ± {s:.1f}" for m, s in spreads.items())
    return (f"One seed: differences under {spread:.1f} points of Forgetting are noise (the seeds' spread over "
            f"{seeds} seeds of the full benchmark: {detail}); the {seeds}-seed table: {where}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("report", type=Path, help="report.json of the run to summarise")
    parser.add_argument("--methods", nargs="+", required=True)
    parser.add_argument("--benchmark", type=Path, required=True, help="report.json of the benchmark over seeds")
    args = parser.parse_args(argv)
    try:
        report, benchmark = (read_report(path) for path in (args.report, args.benchmark))
        print("\n".join(rows(report, args.methods)))
        print(noise_line(benchmark, args.methods, str(args.benchmark.with_name("report.md"))))
    except (OSError, ValueError) as err:
        parser.exit(1, f"error: {err}\n")


def read_report(path: Path) -> dict:
    report = json.loads(path.read_text())
    if not isinstance(report, dict) or "table" not in report:
        raise ValueError(f"{path}: not a report of python -m llava.eval.report (no 'table')")
    return report


if __name__ == "__main__":
    main()
