"""Upstream LLaVA's ScienceQA script: the question is the first human turn of a LLaVA-format JSON list
(`id`, `image`, `conversations`); `--single-pred-prompt` appends the option-letter instruction."""
from llava.eval.run_vqa import ScriptDefaults, main

DEFAULTS = ScriptDefaults(conv_mode="llava_v1", max_new_tokens=1024, image_preprocess="model",
                          question_style="conversations", science=True)

if __name__ == "__main__":
    main(DEFAULTS, description=__doc__)
