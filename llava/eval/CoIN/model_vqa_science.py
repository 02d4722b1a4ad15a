"""CoIN inference for ScienceQA (CoIN `test.json`: question_id, image, text); images the processor's resize and
centre crop, no padding, as CoIN's own script does. The answers file's `prompt` is "<image>\n" + the question for
questions with an image, as CoIN's script writes it (its scorer's IMG-Accuracy counts those).
Flags as upstream (`--model-path --model-base --question-file --image-folder --answers-file --num-chunks
--chunk-idx --temperature --conv-mode --single-pred-prompt`), plus `--batch-size` and `--image-preprocess`."""
from llava.eval.run_vqa import ScriptDefaults, main

DEFAULTS = ScriptDefaults(conv_mode="vicuna_v1", max_new_tokens=1024, image_preprocess="crop", science=True)

if __name__ == "__main__":
    main(DEFAULTS, description=__doc__)
