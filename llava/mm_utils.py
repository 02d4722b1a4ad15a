"""Image and token helpers with upstream LLaVA's names and behaviour, plus the image-token expansion that
transformers' Llava needs (one real `<image>` token per image feature instead of one placeholder)."""
from __future__ import annotations

import base64
from io import BytesIO

import torch
from PIL import Image
from transformers import StoppingCriteria

from llava.constants import DEFAULT_IMAGE_TOKEN, IMAGE_TOKEN_INDEX


def load_image_from_base64(image: str) -> Image.Image:
    return Image.open(BytesIO(base64.b64decode(image)))


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


def process_images(images, image_processor, model_cfg) -> torch.Tensor | list[torch.Tensor]:
    """Preprocess PIL images as the model was trained: `image_aspect_ratio == "pad"` pads to a square with the
    mean colour first; otherwise the processor's resize + centre crop. Returns a stacked tensor when all shapes
    agree (always, for CLIP), else a list."""
    aspect = getattr(model_cfg, "image_aspect_ratio", None)
    new_images = []
    for image in images:
        if aspect == "pad":
            image = expand2square(image.convert("RGB"), pad_background(image_processor))
        new_images.append(image_processor(image, return_tensors="pt")["pixel_values"][0])
    if all(x.shape == new_images[0].shape for x in new_images):
        return torch.stack(new_images, dim=0)
    return new_images


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


class KeywordsStoppingCriteria(StoppingCriteria):
    """Stop a row once its generated tail ends with one of `keywords` (by ids or by decoded text)."""

    def __init__(self, keywords, tokenizer, input_ids):
        self.keywords = keywords
        self.keyword_ids = []
        self.max_keyword_len = 0
        for keyword in keywords:
            cur = tokenizer(keyword).input_ids
            if len(cur) > 1 and cur[0] == tokenizer.bos_token_id:
                cur = cur[1:]
            self.max_keyword_len = max(self.max_keyword_len, len(cur))
            self.keyword_ids.append(torch.tensor(cur))
        self.tokenizer = tokenizer
        self.start_len = input_ids.shape[1]

    def _row_done(self, row: torch.Tensor) -> bool:
        offset = min(row.shape[0] - self.start_len, self.max_keyword_len)
        for keyword_id in self.keyword_ids:
            n = keyword_id.shape[0]
            if row.shape[0] >= n and torch.equal(row[-n:].cpu(), keyword_id):
                return True
        if offset <= 0:
            return False
        tail = self.tokenizer.decode(row[-offset:], skip_special_tokens=True)
        return any(keyword in tail for keyword in self.keywords)

    def __call__(self, output_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs) -> torch.BoolTensor:
        done = [self._row_done(row) for row in output_ids]
        return torch.tensor(done, dtype=torch.bool, device=output_ids.device)
