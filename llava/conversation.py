"""Conversation templates with upstream LLaVA's names and prompt strings.

`Conversation.get_prompt()` renders exactly as upstream. `Conversation.render()` renders the same string and also
returns the character spans the model is trained on (each assistant reply with the separator that closes it),
which is how the dataset builds its labels for every separator style without re-tokenizing pieces.
"""
from __future__ import annotations

import dataclasses
from enum import Enum, auto

from llava.constants import DEFAULT_IMAGE_TOKEN


class SeparatorStyle(Enum):
    SINGLE = auto()
    TWO = auto()
    MPT = auto()
    PLAIN = auto()
    LLAMA_2 = auto()


@dataclasses.dataclass
class Conversation:
    """A conversation: system prompt, two roles, messages `[role, text or None]`; None asks for a reply."""

    system: str
    roles: tuple[str, str]
    messages: list
    offset: int
    sep_style: SeparatorStyle = SeparatorStyle.SINGLE
    sep: str = "###"
    sep2: str | None = None
    version: str = "Unknown"
    skip_next: bool = False

    def append_message(self, role: str, message) -> None:
        self.messages.append([role, message])

    def copy(self) -> "Conversation":
        return Conversation(system=self.system, roles=self.roles, messages=[[r, m] for r, m in self.messages],
                            offset=self.offset, sep_style=self.sep_style, sep=self.sep, sep2=self.sep2,
                            version=self.version)

    def get_prompt(self) -> str:
        return self.render()[0]

    def render(self) -> tuple[str, list[tuple[int, int]]]:
        """(prompt, target spans): each span [start, end) covers an assistant reply and its closing separator."""
        messages = self._messages_with_image_first()
        parts: list[str] = []
        spans: list[tuple[int, int]] = []
        length = 0

        def add(text: str, target: bool = False) -> None:
            nonlocal length
            if target and text:
                spans.append((length, length + len(text)))
            parts.append(text)
            length += len(text)

        style = self.sep_style
        if style == SeparatorStyle.SINGLE:
            add(self.system + self.sep)
            for role, message in messages:
                if message:
                    add(role + ":")
                    add(" " + message + self.sep, target=role == self.roles[1])
                else:
                    add(role + ":")
        elif style == SeparatorStyle.TWO:
            seps = [self.sep, self.sep2]
            add(self.system + seps[0])
            for i, (role, message) in enumerate(messages):
                if message:
                    add(role + ":")
                    add(" " + message + seps[i % 2], target=role == self.roles[1])
                else:
                    add(role + ":")
        elif style == SeparatorStyle.MPT:
            add(self.system + self.sep)
            for role, message in messages:
                if message:
                    add(role)
                    add(message + self.sep, target=role == self.roles[1])
                else:
                    add(role)
        elif style == SeparatorStyle.LLAMA_2:
            for i, (role, message) in enumerate(messages):
                if i == 0:
                    assert message, "first message should not be none"
                    assert role == self.roles[0], "first message should come from user"
                if not message:
                    continue
                if role == self.roles[0]:
                    if i == 0 and self.system:
                        message = f"<<SYS>>\n{self.system}\n<</SYS>>\n\n" + message
                    add(self.sep + f"[INST] {message} [/INST]" if i > 0 else f"[INST] {message} [/INST]")
                else:
                    add(f" {message} " + self.sep2, target=True)
        elif style == SeparatorStyle.PLAIN:
            seps = [self.sep, self.sep2]
            add(self.system)
            for i, (role, message) in enumerate(messages):
                if message:
                    add(message + (seps[i % 2] or ""), target=i % 2 == 1)
        else:
            raise ValueError(f"invalid separator style: {style}")
        return "".join(parts), spans

    def _messages_with_image_first(self) -> list:
        """Messages as upstream renders them: a first message given as a (text, image, mode) tuple becomes
        "<image>\n" + its text (mmtag templates: an extra "<Image><image></Image>" / "Received." exchange)."""
        messages = [[role, message] for role, message in self.messages]
        if messages and isinstance(messages[0][1], tuple):
            role, message = messages[0]
            text = message[0].replace(DEFAULT_IMAGE_TOKEN, "").strip()
            if "mmtag" in self.version:
                messages[0] = [role, text]
                messages[:0] = [[self.roles[0], "<Image>" + DEFAULT_IMAGE_TOKEN + "</Image>"], [self.roles[1], "Received."]]
            else:
                messages[0] = [role, DEFAULT_IMAGE_TOKEN + "\n" + text]
        return [[role, m[0] if isinstance(m, tuple) else m] for role, m in messages]

    def dict(self) -> dict:
        return {"system": self.system, "roles": self.roles, "messages": self.messages, "offset": self.offset,
                "sep": self.sep, "sep2": self.sep2}


conv_vicuna_v1 = Conversation(
    system="A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions.",
    roles=("USER", "ASSISTANT"), version="v1", messages=[], offset=0,
    sep_style=SeparatorStyle.TWO, sep=" ", sep2="</s>",
)

conv_llava_v1 = Conversation(
    system="A chat between a curious human and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the human's questions.",
    roles=("USER", "ASSISTANT"), version="v1", messages=[], offset=0,
    sep_style=SeparatorStyle.TWO, sep=" ", sep2="</s>",
)

conv_llava_v1_mmtag = Conversation(
    system="A chat between a curious user and an artificial intelligence assistant. "
    "The assistant is able to understand the visual content that the user provides, and assist the user with a "
    "variety of tasks using natural language."
    "The visual content will be provided with the following format: <Image>visual content</Image>.",
    roles=("USER", "ASSISTANT"), version="v1_mmtag", messages=[], offset=0,
    sep_style=SeparatorStyle.TWO, sep=" ", sep2="</s>",
)

conv_llava_plain = Conversation(
    system="", roles=("", ""), messages=[], offset=0, sep_style=SeparatorStyle.PLAIN, sep="\n",
)

conv_llama_2 = Conversation(
    system="You are a helpful, respectful and honest assistant. Always answer as helpfully as possible, while being "
    "safe.  Your answers should not include any harmful, unethical, racist, sexist, toxic, dangerous, or illegal "
    "content. Please ensure that your responses are socially unbiased and positive in nature.\n\n"
    "If a question does not make any sense, or is not factually coherent, explain why instead of answering "
    "something not correct. If you don't know the answer to a question, please don't share false information.",
    roles=("USER", "ASSISTANT"), version="llama_v2", messages=[], offset=0,
    sep_style=SeparatorStyle.LLAMA_2, sep="<s>", sep2="</s>",
)

conv_llava_llama_2 = Conversation(
    system="You are a helpful language and vision assistant. You are able to understand the visual content that "
    "the user provides, and assist the user with a variety of tasks using natural language.",
    roles=("USER", "ASSISTANT"), version="llama_v2", messages=[], offset=0,
    sep_style=SeparatorStyle.LLAMA_2, sep="<s>", sep2="</s>",
)

conv_mistral_instruct = Conversation(
    system="", roles=("USER", "ASSISTANT"), version="llama_v2", messages=[], offset=0,
    sep_style=SeparatorStyle.LLAMA_2, sep="", sep2="</s>",
)

conv_mpt = Conversation(
    system="<|im_start|>system\nA conversation between a user and an LLM-based AI assistant. "
    "The assistant gives helpful and honest answers.",
    roles=("<|im_start|>user\n", "<|im_start|>assistant\n"), version="mpt", messages=[], offset=0,
    sep_style=SeparatorStyle.MPT, sep="<|im_end|>",
)

conv_chatml_direct = Conversation(
    system="<|im_start|>system\nAnswer the questions.",
    roles=("<|im_start|>user\n", "<|im_start|>assistant\n"), version="mpt", messages=[], offset=0,
    sep_style=SeparatorStyle.MPT, sep="<|im_end|>",
)

conv_templates = {
    "v1": conv_vicuna_v1,
    "vicuna_v1": conv_vicuna_v1,
    "llava_v1": conv_llava_v1,
    "v1_mmtag": conv_llava_v1_mmtag,
    "plain": conv_llava_plain,
    "v0_plain": conv_llava_plain,
    "llama_2": conv_llama_2,
    "llava_llama_2": conv_llava_llama_2,
    "mistral_instruct": conv_mistral_instruct,
    "mpt": conv_mpt,
    "chatml_direct": conv_chatml_direct,
    "mistral_direct": conv_chatml_direct,
}


def check_template(name: str, flag: str) -> None:
    """A ValueError naming `flag` and the known template names unless `name` is one of conv_templates."""
    if name not in conv_templates:
        raise ValueError(f"{flag} {name!r} is not a known conversation template; choose one of "
                         f"{sorted(conv_templates)} (LLaVA-1.5 uses v1)")
