"""Conversation templates render upstream's exact prompt strings, and report the spans that are trained on."""
from llava.conversation import conv_templates

VICUNA_SYSTEM = ("A chat between a curious user and an artificial intelligence assistant. "
                 "The assistant gives helpful, detailed, and polite answers to the user's questions.")


def render(name, *messages):
    conv = conv_templates[name].copy()
    conv.messages = []
    for i, message in enumerate(messages):
        conv.append_message(conv.roles[i % 2], message)
    return conv.render()


def test_vicuna_v1_two_rounds_exact():
    prompt, spans = render("vicuna_v1", "<image>\nWhat is it?", "A cat.", "Sure?", "Yes.")
    assert prompt == (VICUNA_SYSTEM + " USER: <image>\nWhat is it? ASSISTANT: A cat.</s>USER: Sure? ASSISTANT: Yes.</s>")
    assert [prompt[a:b] for a, b in spans] == [" A cat.</s>", " Yes.</s>"]


def test_v1_is_vicuna_v1_and_generation_prompt_ends_with_assistant_colon():
    assert conv_templates["v1"] is conv_templates["vicuna_v1"]
    prompt, spans = render("vicuna_v1", "<image>\nQ", None)
    assert prompt == VICUNA_SYSTEM + " USER: <image>\nQ ASSISTANT:"
    assert spans == []


def test_llava_v1_is_a_different_system_prompt():
    prompt, _ = render("llava_v1", "Q", None)
    assert prompt.startswith("A chat between a curious human and an artificial intelligence assistant. "
                             "The assistant gives helpful, detailed, and polite answers to the human's questions.")


def test_plain_template():
    prompt, spans = render("plain", "<image>\nWhat is it?", None)
    assert prompt == "<image>\nWhat is it?\n"
    prompt, spans = render("plain", "<image>", "a red circle")
    assert prompt == "<image>\na red circle"  # upstream's sep2 is None: nothing after the reply
    assert [prompt[a:b] for a, b in spans] == ["a red circle"]


def test_image_tuple_moves_token_to_front():
    conv = conv_templates["vicuna_v1"].copy()
    conv.messages = []
    conv.append_message("USER", ("What is it? <image>", None, "pad"))
    conv.append_message("ASSISTANT", None)
    assert conv.get_prompt() == VICUNA_SYSTEM + " USER: <image>\nWhat is it? ASSISTANT:"


def test_llama_2_template():
    prompt, spans = render("llava_llama_2", "Q1", "A1", "Q2", "A2")
    system = conv_templates["llava_llama_2"].system
    assert prompt == f"[INST] <<SYS>>\n{system}\n<</SYS>>\n\nQ1 [/INST] A1 </s><s>[INST] Q2 [/INST] A2 </s>"
    assert [prompt[a:b] for a, b in spans] == [" A1 </s>", " A2 </s>"]
