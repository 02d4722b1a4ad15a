"""Answer a question file with a trained model: the engine behind every upstream and CoIN inference script.

The scripts (`model_vqa_loader.py`, `model_vqa_science.py`, `CoIN/model_*.py`) differ only in their defaults:
which question field holds the text, how images are preprocessed (upstream's choice per script, overridable
with `--image-preprocess`), the conversation template, and the generation length. Decoding is greedy at
`--temperature 0`. Answers are written in upstream's JSON-lines schema, in question-file order, atomically.
"""
from __future__ import annotations

import argparse
import json
import math
import os
from dataclasses import dataclass

import shortuuid
import torch
from tqdm import tqdm

from llava.constants import DEFAULT_IMAGE_TOKEN
from llava.conversation import check_template, conv_templates
from llava.eval.CoIN.common import index_questions, load_questions
from llava.mm_utils import (expand_image_tokens, get_model_name_from_path, image_pixels, load_image,
                            tokenizer_image_token)
from llava.utils import atomic_write_text

IMAGE_PREPROCESS = ("model", "pad", "crop")


@dataclass
class ScriptDefaults:
    """What one upstream inference script does differently."""

    conv_mode: str = "llava_v1"
    max_new_tokens: int = 128
    image_preprocess: str = "model"   # "model": as the model config says (pad or crop); "pad"; "crop"
    question_style: str = "text"      # "text": the `text` field; "conversations": first human turn (ScienceQA JSON)
    science: bool = False             # a ScienceQA script: --single-pred-prompt, and `prompt` records the image token


def split_list(lst: list, n: int) -> list[list]:
    """`lst` in n contiguous chunks of ceil(len/n) (upstream's chunking; the last chunks may be short or empty)."""
    size = math.ceil(len(lst) / n)
    return [lst[i:i + size] for i in range(0, len(lst), size)]


def get_chunk(lst: list, n: int, k: int) -> list:
    chunks = split_list(lst, n)
    if k >= len(chunks):
        return []
    return chunks[k]


def add_arguments(parser: argparse.ArgumentParser, defaults: ScriptDefaults) -> None:
    """Upstream's flags, with this script's defaults, plus ours (`--batch-size`, `--image-preprocess`)."""
    parser.add_argument("--model-path", type=str, default="facebook/opt-350m")
    parser.add_argument("--model-base", type=str, default=None)
    parser.add_argument("--image-folder", type=str, default="")
    parser.add_argument("--question-file", type=str, default="tables/question.jsonl")
    parser.add_argument("--answers-file", type=str, default="answer.jsonl")
    parser.add_argument("--conv-mode", type=str, default=defaults.conv_mode)
    parser.add_argument("--num-chunks", type=int, default=1)
    parser.add_argument("--chunk-idx", type=int, default=0)
    parser.add_argument("--temperature", type=float, default=0.2)
    parser.add_argument("--top_p", type=float, default=None)
    parser.add_argument("--num_beams", type=int, default=1)
    parser.add_argument("--max_new_tokens", type=int, default=defaults.max_new_tokens)
    parser.add_argument("--batch-size", type=int, default=1, help="questions per generate call (ours; 1 = upstream)")
    parser.add_argument("--image-preprocess", choices=IMAGE_PREPROCESS, default=defaults.image_preprocess,
                        help="pad to square, centre-crop, or as the model config says (default: this script's "
                             "upstream behaviour)")
    if defaults.science:
        parser.add_argument("--single-pred-prompt", action="store_true",
                            help="append the instruction to answer with the option's letter")
        parser.add_argument("--answer-prompter", action="store_true",
                            help="refused: upstream's second pass for LLaVA-v0 reasoning answers is not implemented")


def question_text(item: dict, style: str, single_pred_prompt: bool) -> str:
    """The user text of a question record, without any image token."""
    if style == "conversations":
        text = item["conversations"][0]["value"]
    else:
        text = item["text"]
    text = text.replace(DEFAULT_IMAGE_TOKEN, "").strip()
    if single_pred_prompt:
        text = text + "\n" + "Answer with the option's letter from the given choices directly."
    return text


def recorded_prompt(item: dict, text: str, has_image: bool, science: bool) -> str:
    """The answers file's `prompt`. ScienceQA scripts (upstream's and CoIN's model_vqa_science): "<image>\n" + the
    question text (with the --single-pred-prompt line) when the question has an image, else the text; CoIN's
    scorer counts IMG-Accuracy over the prompts holding "<image>". Other scripts: the question's `text` as given."""
    if science:
        return (DEFAULT_IMAGE_TOKEN + "\n" + text) if has_image else text
    return item["text"]


def build_prompt(text: str, has_image: bool, conv_mode: str) -> str:
    check_template(conv_mode, "--conv-mode")
    conv = conv_templates[conv_mode].copy()
    conv.messages = []
    conv.append_message(conv.roles[0], (DEFAULT_IMAGE_TOKEN + "\n" + text) if has_image else text)
    conv.append_message(conv.roles[1], None)
    return conv.get_prompt()


def aspect_ratio(mode: str, model_config) -> str:
    """The training `image_aspect_ratio` an --image-preprocess mode stands for: "pad" pads to a square, "crop" is
    the processor's resize + centre crop (training's "square"), "model" is what the model was trained with (its
    config's image_aspect_ratio; "square", upstream's default, when the config records none)."""
    if mode == "model":
        return getattr(model_config, "image_aspect_ratio", None) or "square"
    if mode not in IMAGE_PREPROCESS:
        raise ValueError(f"--image-preprocess {mode!r}: choose one of {IMAGE_PREPROCESS}")
    return {"pad": "pad", "crop": "square"}[mode]


def question_pixels(path: str, image_processor, mode: str, model_config) -> torch.Tensor:
    """[3, H, W] pixel values of the image file at path, read and preprocessed as training does for
    aspect_ratio(mode, model_config) (llava.mm_utils.load_image and image_pixels)."""
    try:
        image = load_image(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"image file missing: {path} (check --image-folder)") from None
    return image_pixels(image, image_processor, aspect_ratio(mode, model_config))


@torch.inference_mode()
def generate_batch(model, tokenizer, prompts: list[str], images: list, args) -> list[str]:
    """Greedy (temperature 0) or sampled answers for a batch of prompts; rows are left-padded."""
    config = model.config
    rows = [expand_image_tokens(tokenizer_image_token(p, tokenizer), config.image_token_index, config.image_seq_length)
            for p in prompts]
    longest = max(len(r) for r in rows)
    pad = tokenizer.pad_token_id
    input_ids = torch.full((len(rows), longest), pad, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), longest), dtype=torch.long)
    for i, row in enumerate(rows):
        input_ids[i, longest - len(row):] = torch.tensor(row)
        attention_mask[i, longest - len(row):] = 1
    device = model.device
    kwargs = {}
    present = [img for img in images if img is not None]
    if present:
        kwargs["pixel_values"] = torch.stack(present).to(device=device, dtype=model.dtype)
    do_sample = args.temperature > 0
    output = model.generate(
        input_ids=input_ids.to(device), attention_mask=attention_mask.to(device), do_sample=do_sample,
        temperature=args.temperature if do_sample else None, top_p=args.top_p if do_sample else None,
        num_beams=args.num_beams, max_new_tokens=args.max_new_tokens, use_cache=True, pad_token_id=pad,
        eos_token_id=tokenizer.eos_token_id, suppress_tokens=[config.image_token_index], **kwargs)
    new_tokens = output[:, longest:]
    return [t.strip() for t in tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]


def check_ids(questions, style: str) -> None:
    """CoIN/upstream question files carry `question_id`; the ScienceQA conversation JSON carries `id`."""
    if style == "text":
        index_questions(questions)
        return
    seen, repeated = set(), []
    for position, item in enumerate(questions):
        if "id" not in item:
            raise ValueError(f"{questions.source}: record {position} has no id")
        key = str(item["id"])
        if key in seen:
            repeated.append(key)
        seen.add(key)
    if repeated:
        raise ValueError(f"{questions.source}: duplicate id {repeated[:5]}")


def run(args, defaults: ScriptDefaults) -> None:
    from llava.model.builder import load_pretrained_model

    questions = load_questions(args.question_file)
    check_ids(questions, defaults.question_style)  # duplicate or missing ids: an error before any work
    chunk = get_chunk(list(questions), args.num_chunks, args.chunk_idx)
    tokenizer, model, image_processor, _ = load_pretrained_model(args.model_path, args.model_base,
                                                                 get_model_name_from_path(args.model_path))
    model_id = get_model_name_from_path(args.model_path)
    single = getattr(args, "single_pred_prompt", False)
    lines = []
    progress = tqdm(total=len(chunk), desc=f"answering {args.question_file}", unit="q")
    for start in range(0, len(chunk), args.batch_size):
        batch = chunk[start:start + args.batch_size]
        prompts, images, recorded = [], [], []
        for item in batch:
            has_image = bool(item.get("image"))
            text = question_text(item, defaults.question_style, single)
            prompts.append(build_prompt(text, has_image, args.conv_mode))
            recorded.append(recorded_prompt(item, text, has_image, defaults.science))
            images.append(question_pixels(os.path.join(args.image_folder, item["image"]), image_processor,
                                          args.image_preprocess, model.config) if has_image else None)
        answers = generate_batch(model, tokenizer, prompts, images, args)
        for item, prompt_text, answer in zip(batch, recorded, answers):
            qid = item["question_id"] if "question_id" in item else item["id"]
            lines.append({"question_id": qid, "prompt": prompt_text, "text": answer,
                          "answer_id": shortuuid.uuid(), "model_id": model_id, "metadata": {}})
        progress.update(len(batch))
    progress.close()
    atomic_write_text(args.answers_file, "".join(json.dumps(line) + "\n" for line in lines))


def main(defaults: ScriptDefaults, argv: list[str] | None = None, description: str | None = None) -> None:
    parser = argparse.ArgumentParser(description=description)
    add_arguments(parser, defaults)
    args = parser.parse_args(argv)
    if args.batch_size < 1:
        parser.error("--batch-size must be >= 1")
    if getattr(args, "answer_prompter", False):
        parser.error("--answer-prompter is not implemented (upstream's second generation pass after a LLaVA-v0 "
                     "reasoning answer); LLaVA-1.5 answers with the letter: use --single-pred-prompt")
    from llava.utils import run_main

    run_main(run, args, defaults)
