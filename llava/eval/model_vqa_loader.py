"""Upstream LLaVA's batch VQA script: a .jsonl (or JSON list) question file with `question_id`, `image`, `text`;
images preprocessed as the model was trained (`image_aspect_ratio`)."""
from llava.eval.run_vqa import ScriptDefaults, main

DEFAULTS = ScriptDefaults(conv_mode="llava_v1", max_new_tokens=128, image_preprocess="model")

if __name__ == "__main__":
    main(DEFAULTS, description=__doc__)
