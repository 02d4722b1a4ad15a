"""CoIN inference for OCR-VQA (CoIN `test.json`); images padded as the model was trained, as CoIN's own script does.
Flags as upstream (`--model-path --model-base --question-file --image-folder --answers-file --num-chunks
--chunk-idx --temperature --conv-mode`), plus `--batch-size` and `--image-preprocess`."""
from llava.eval.run_vqa import ScriptDefaults, main

DEFAULTS = ScriptDefaults(conv_mode="vicuna_v1", max_new_tokens=128, image_preprocess="model")

if __name__ == "__main__":
    main(DEFAULTS, description=__doc__)
