"""Constants with upstream LLaVA's names and values."""

# Label value ignored by the loss.
IGNORE_INDEX = -100
# Placeholder id that `tokenizer_image_token` puts where "<image>" stood; the dataset and the eval scripts
# expand it into `image_seq_length` copies of the tokenizer's real "<image>" token (transformers' Llava).
IMAGE_TOKEN_INDEX = -200
DEFAULT_IMAGE_TOKEN = "<image>"
DEFAULT_IMAGE_PATCH_TOKEN = "<im_patch>"
