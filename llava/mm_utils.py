"""Image and token helpers with upstream LLaVA's names and behaviour, plus the image-token expansion that
transformers' Llava needs (one real `<image>` token per image feature instead of one placeholder).

Images are read (`load_image`) and turned into pixel values (`image_pixels`) here only: training
(llava/train/data.py) and every inference script (llava/eval/run_vqa.py) call the same two functions, so an image
preprocessed with the same aspect-ratio setting gives the same tensor in both."""
from __future__ import annotations

import os

import torch
from PIL import Image, UnidentifiedImageError

from llava.constants import DEFAULT_IMAGE_TOKEN, IMAGE_TOKEN_INDEX

# upstream's `--image_aspect_ratio` values this package implements, and what each does to an image before the CLIP
# processor.
IMAGE_ASPECT_RATIOS = {
    "pad": "pad to a square with the processor's mean colour, then resize (LLaVA-1.5)",
    "square": "no padding: the processor's resize and centre crop (upstream's default)",
}


def load_image(path: str | os.PathLike) -> Image.Image:
    """The image file at path as RGB (L, LA, P, CMYK, RGBA and other modes converted). Raises FileNotFoundError
    when the file is missing, ValueError ("cannot read image PATH: why") when PIL cannot read it."""
    try:
        with Image.open(path) as image:
            image.load()
            return image.convert("RGB")
    except FileNotFoundError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise ValueError(f"cannot read image {path}: {e}") from None


def check_aspect_ratio(aspect_ratio: str) -> str:
    """aspect_ratio if it is one of IMAGE_ASPECT_RATIOS, else a ValueError naming the supported values."""
    if aspect_ratio not in IMAGE_ASPECT_RATIOS:
        why = " (LLaVA-NeXT's any-resolution tiling)" if aspect_ratio.startswith("anyres") else ""
        raise ValueError(f"--image_aspect_ratio {aspect_ratio!r} is not implemented{why}; use one of: "
                         + "; ".join(f"{name} ({what})" for name, what in IMAGE_ASPECT_RATIOS.items()))
    return aspect_ratio


def image_pixels(image: Image.Image, image_processor, aspect_ratio: str) -> torch.Tensor:
    """Pixel values [3, H, W] (the processor's crop size, normalised by its mean and std) of an RGB image:
    aspect_ratio "pad" first pads it to a square of the processor's mean colour (upstream's `expand2square`),
    "square" leaves it to the processor (resize of the shorter side + centre crop)."""
    if check_aspect_ratio(aspect_ratio) == "pad":
        image = expand2square(image, pad_background(image_processor))
    return image_processor(image, return_tensors="pt")["pixel_values"][0]


def expand2square(pil_img: Image.Image, background_color) -> Image.Image:
    """Pad to a square of side max(w, h), the image centred, the border filled with `background_color`."""
    width, height = pil_img.size
    if width == height:
        return pil_img
    side = max(width, height)
    result = Image.new(pil_img.mode, (side, side), background_color)
    result.paste(pil_img, ((side - width) // 2, (side - height) // 2))
    return result


def pad_background(image_processor) -> tuple[int, ...]:
    """The padding colour upstream uses: the processor's mean, in 0-255."""
    return tuple(int(x * 255) for x in image_processor.image_mean)


def _chunk_encodings(prompt: str, tokenizer):
    """Tokenize each piece of `prompt` between "<image>" tokens separately (upstream's scheme); returns, per
    chunk, (ids, offsets into `prompt`) with the BOS token the tokenizer adds still first in each chunk."""
    out = []
    start = 0
    for chunk in prompt.split(DEFAULT_IMAGE_TOKEN):
        enc = tokenizer(chunk, return_offsets_mapping=True)
        offsets = [(a + start, b + start) for a, b in enc["offset_mapping"]]
        out.append((list(enc["input_ids"]), offsets))
        start += len(chunk) + len(DEFAULT_IMAGE_TOKEN)
    return out


def tokenize_with_offsets(prompt: str, tokenizer, image_token_index: int = IMAGE_TOKEN_INDEX):
    """`tokenizer_image_token`'s ids, plus each id's character span in `prompt` ((-1, -1) for BOS and the image
    placeholders). The ids are identical to `tokenizer_image_token(prompt, tokenizer)`."""
    chunks = _chunk_encodings(prompt, tokenizer)
    ids: list[int] = []
    offsets: list[tuple[int, int]] = []
    bos = tokenizer.bos_token_id
    keep_bos = bool(chunks) and bool(chunks[0][0]) and chunks[0][0][0] == bos
    if keep_bos:
        ids.append(bos)
        offsets.append((-1, -1))
    skip = 1 if keep_bos else 0
    for i, (chunk_ids, chunk_offsets) in enumerate(chunks):
        if i > 0:
            ids.append(image_token_index)
            offsets.append((-1, -1))
        ids.extend(chunk_ids[skip:])
        offsets.extend(chunk_offsets[skip:])
    return ids, offsets


def tokenizer_image_token(prompt: str, tokenizer, image_token_index: int = IMAGE_TOKEN_INDEX, return_tensors=None):
    """Token ids of `prompt` with each "<image>" replaced by one `image_token_index`: every text chunk is
    tokenized on its own, only the first chunk's BOS kept (as upstream)."""
    ids, _ = tokenize_with_offsets(prompt, tokenizer, image_token_index)
    if return_tensors is None:
        return ids
    if return_tensors == "pt":
        return torch.tensor(ids, dtype=torch.long)
    raise ValueError(f"Unsupported tensor type: {return_tensors}")


def expand_image_tokens(ids, image_token_id: int, image_seq_length: int, image_token_index: int = IMAGE_TOKEN_INDEX):
    """Replace each `image_token_index` placeholder by `image_seq_length` copies of the tokenizer's real image
    token id (what transformers' Llava scatters the image features into). Works on lists and 1-d tensors."""
    if isinstance(ids, torch.Tensor):
        return torch.tensor(expand_image_tokens(ids.tolist(), image_token_id, image_seq_length, image_token_index),
                            dtype=ids.dtype)
    out = []
    for token in ids:
        out.extend([image_token_id] * image_seq_length if token == image_token_index else [token])
    return out


def get_model_name_from_path(model_path: str) -> str:
    model_path = model_path.strip("/")
    parts = model_path.split("/")
    if parts[-1].startswith("checkpoint-"):
        return parts[-2] + "_" + parts[-1]
    return parts[-1]
