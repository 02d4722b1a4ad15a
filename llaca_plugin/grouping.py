"""Instruction grouping (LLaCA's "LoRASelect"): which group's weights a task continues, which group answers a test file.

A codebook directory holds one file per group, ``instruction_<k>.txt`` (k = 1..n, one instruction per line).
For an instruction file (CoIN ``Instructions*/<Task>/{train,test,val}.json``) the de-duplicated instruction set
is compared with every group: the similarity to group k is the mean, over all pairs (current instruction,
codebook line), of the cosine similarity of a TF-IDF vectoriser (English stop words) fitted on just that pair.
The best group k* wins when its similarity reaches the threshold (0.90 for the original ``Instructions`` type,
0.30 for the other types). Below it, a training file opens group n+1 and a test file goes to the newest group n.

Behaviour follows the released ``instruct/LoRASelect.py`` (its rules and the groups the released scripts use:
docs/coin_chain.md, "The released grouping"), with these deviations:

* train vs test is decided by "train" in the file *name*, not anywhere in the path (a run directory called
  ``train_runs/`` would otherwise turn every test file into a training file and commit it to the codebook);
* an ImageNet *test* file uses its question line (the first line of ``text``, the line the training rule takes
  after ``<image>``), not the whole text: the whole text ("What is the object in the image?" plus the
  short-answer line) scores 0.78 against the short-answer group and 0.38 against ImageNet's own group, so with
  the 0.90 threshold it falls back to the newest group, i.e. to Grounding's weights once Grounding is trained.
  ``released_imagenet_test_rule=True`` restores the released rule;
* deciding never writes; ``commit`` appends after training, atomically, in first-seen order (not set order),
  and refuses test files, skipped group numbers and instructions with no content word.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics.pairwise import cosine_similarity

ORIGINAL_TYPE = "Instructions"
ORIGINAL_THRESHOLD = 0.90
OTHER_THRESHOLD = 0.30
IMAGE_LINE = "<image>"
_CODEBOOK_NAME = re.compile(r"^instruction_([1-9][0-9]*)\.txt$")


class GroupingError(ValueError):
    """An instruction file or codebook that cannot be grouped; the message names the file."""


@dataclass(frozen=True)
class GroupDecision:
    """group: 1-based group id; similarity: best mean TF-IDF cosine in [0, 1] (0.0 without a codebook);
    new: True when a training file opens this group."""

    group: int
    similarity: float
    new: bool


def is_train_file(path: str | os.PathLike) -> bool:
    """True for training files ("train" in the file name)."""
    return "train" in Path(path).name


def default_threshold(path: str | os.PathLike) -> float:
    """0.90 when the grand-parent folder is ``Instructions`` (original wording), 0.30 otherwise."""
    return ORIGINAL_THRESHOLD if Path(path).parent.parent.name == ORIGINAL_TYPE else OTHER_THRESHOLD


def _train_instruction(value: str, task: str) -> str:
    """The instruction of a first human turn: ImageNet line 1, Grounding last line before ':', else last line."""
    lines = value.split("\n")
    if task == "ImageNet":
        if len(lines) < 2:
            raise IndexError("ImageNet prompt has no line 1")
        return lines[1].strip()
    if task == "Grounding":
        return lines[-1].split(":")[0].strip()
    return lines[-1].strip()


def _test_instruction(text: str, task: str, released_imagenet_test_rule: bool) -> str:
    """The instruction of a question ``text``: ImageNet its question line, Grounding last line before ':',
    else last line."""
    lines = text.split("\n")
    if task == "ImageNet":
        if released_imagenet_test_rule:
            return text.strip()
        if lines[0].strip() == IMAGE_LINE and len(lines) > 1:
            return lines[1].strip()
        return lines[0].strip()
    if task == "Grounding":
        return lines[-1].split(":")[0].strip()
    return lines[-1].strip()


def extract_instructions(path: str | os.PathLike, *, released_imagenet_test_rule: bool = False) -> list[str]:
    """De-duplicated instructions of a CoIN train/test/val JSON list, in first-seen order.

    Task = parent folder name. Training records use the first conversation turn, question records ``text``.
    """
    path = Path(path)
    task = path.parent.name
    try:
        records = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise GroupingError(f"{path}: cannot read a JSON list ({err})") from err
    if not isinstance(records, list):
        raise GroupingError(f"{path}: expected a JSON list of records")
    train = is_train_file(path)
    found: dict[str, None] = {}
    for index, record in enumerate(records):
        try:
            if train:
                instruction = _train_instruction(record["conversations"][0]["value"], task)
            else:
                instruction = _test_instruction(record["text"], task, released_imagenet_test_rule)
        except (KeyError, IndexError, TypeError, AttributeError) as err:
            field = "conversations[0].value" if train else "text"
            raise GroupingError(f"{path}: record {index} has no usable {field} ({err!r})") from err
        found.setdefault(instruction, None)
    return list(found)


_ANALYZER = TfidfVectorizer(stop_words="english").build_analyzer()


def _require_content(instructions: list[str], source: Path) -> None:
    """Raise unless there is at least one instruction and each has a non-stop-word token (else TF-IDF fails)."""
    if not instructions:
        raise GroupingError(f"{source}: no instructions found")
    vacuous = [text for text in instructions if not _ANALYZER(text)]
    if vacuous:
        raise GroupingError(f"{source}: instruction(s) with only stop words or no words: {vacuous!r}")


def read_codebook(codebook_dir: str | os.PathLike) -> dict[int, list[str]]:
    """Groups 1..n -> their instruction lines. Missing directory = empty codebook; gaps are an error."""
    codebook_dir = Path(codebook_dir)
    if not codebook_dir.is_dir():
        return {}
    files = {}
    for entry in codebook_dir.iterdir():
        match = _CODEBOOK_NAME.match(entry.name)
        if match:
            files[int(match.group(1))] = entry
    if sorted(files) != list(range(1, len(files) + 1)):
        raise GroupingError(f"{codebook_dir}: codebook groups {sorted(files)} are not numbered 1..n")
    codebook = {}
    for group in sorted(files):
        lines = [line.strip() for line in files[group].read_text(encoding="utf-8").splitlines()]
        codebook[group] = [line for line in lines if line]
        if not codebook[group]:
            raise GroupingError(f"{files[group]}: codebook file holds no instruction")
    return codebook


def pair_similarity(first: str, second: str) -> float:
    """Cosine similarity of two strings under a TF-IDF (English stop words) fitted on just this pair."""
    matrix = TfidfVectorizer(stop_words="english").fit_transform([first, second])
    return float(cosine_similarity(matrix[0:1], matrix[1:2])[0, 0])


def group_similarity(instructions: list[str], group_lines: list[str]) -> float:
    """Mean pair similarity over every (instruction, codebook line) pair."""
    scores = [pair_similarity(current, past) for current in instructions for past in group_lines]
    return sum(scores) / len(scores)


def decide(
    codebook_dir: str | os.PathLike,
    instruct_file: str | os.PathLike,
    threshold: float | None = None,
    *,
    released_imagenet_test_rule: bool = False,
) -> GroupDecision:
    """Group for a training file (reuse k* or open n+1) or a test file (k*, else the newest group n).

    Reads only; ``commit`` records a training file's instructions once its training has finished.
    """
    instruct_file = Path(instruct_file)
    instructions = extract_instructions(instruct_file, released_imagenet_test_rule=released_imagenet_test_rule)
    _require_content(instructions, instruct_file)
    codebook = read_codebook(codebook_dir)
    train = is_train_file(instruct_file)
    if not codebook:
        if not train:
            raise GroupingError(f"{codebook_dir}: empty codebook, cannot route test file {instruct_file}")
        return GroupDecision(group=1, similarity=0.0, new=True)
    similarities = {group: group_similarity(instructions, lines) for group, lines in codebook.items()}
    best = max(similarities, key=lambda group: (similarities[group], -group))
    limit = default_threshold(instruct_file) if threshold is None else threshold
    if similarities[best] >= limit:
        return GroupDecision(group=best, similarity=similarities[best], new=False)
    if train:
        return GroupDecision(group=len(codebook) + 1, similarity=similarities[best], new=True)
    return GroupDecision(group=len(codebook), similarity=similarities[best], new=False)


def commit(codebook_dir: str | os.PathLike, instruct_file: str | os.PathLike, group: int) -> list[str]:
    """Append the training file's instructions not yet in ``instruction_<group>.txt``; return them.

    group may be an existing group or n+1 (creates the file). The file is replaced atomically (temp + rename).
    """
    codebook_dir, instruct_file = Path(codebook_dir), Path(instruct_file)
    if not is_train_file(instruct_file):
        raise GroupingError(f"{instruct_file}: only training files are committed to the codebook")
    instructions = extract_instructions(instruct_file)
    _require_content(instructions, instruct_file)
    known_groups = len(read_codebook(codebook_dir))
    if not 1 <= group <= known_groups + 1:
        raise GroupingError(f"{codebook_dir}: group {group} is not in 1..{known_groups + 1}")
    target = codebook_dir / f"instruction_{group}.txt"
    old_text = target.read_text(encoding="utf-8") if target.exists() else ""
    present = {line.strip() for line in old_text.splitlines()}
    added = [line for line in instructions if line not in present]
    if added:
        if old_text and not old_text.endswith("\n"):
            old_text += "\n"
        _write_atomically(target, old_text + "".join(line + "\n" for line in added))
    return added


def _write_atomically(target: Path, text: str) -> None:
    """Write text to a temporary file beside target, then rename it over target."""
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def main(argv: list[str] | None = None) -> int:
    """CLI: print one JSON line with the decision, or with ``--commit GROUP`` what was appended."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--codebook", required=True, help="codebook directory (instruction_<k>.txt files)")
    parser.add_argument("--instruct", required=True, help="CoIN train.json / test.json / val.json")
    parser.add_argument("--threshold", type=float, default=None, help="override 0.90 (Instructions) / 0.30")
    parser.add_argument("--commit", type=int, metavar="GROUP", help="append the training file's instructions")
    parser.add_argument(
        "--released-imagenet-test-rule", action="store_true", help="ImageNet test files: whole text (released)"
    )
    args = parser.parse_args(argv)
    try:
        if args.commit is not None:
            added = commit(args.codebook, args.instruct, args.commit)
            target = Path(args.codebook) / f"instruction_{args.commit}.txt"
            print(json.dumps({"group": args.commit, "added": added, "file": str(target)}))
        else:
            decision = decide(
                args.codebook,
                args.instruct,
                args.threshold,
                released_imagenet_test_rule=args.released_imagenet_test_rule,
            )
            print(json.dumps(asdict(decision)))
    except GroupingError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
