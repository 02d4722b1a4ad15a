"""VQA-style answer normalisation and accuracy, with the names LLaVA's `llava.eval.m4c_evaluator` exposes.

`EvalAIAnswerProcessor` normalises an answer the way the VQA / EvalAI servers do. `TextVQAAccuracyEvaluator`
gives the soft VQA accuracy against ten human answers, `STVQAAccuracyEvaluator` the exact match after
normalisation. `eval_pred_list` returns a fraction in [0, 1] (callers multiply by 100), as upstream does.
"""
from __future__ import annotations

import re
from collections import Counter

# Contraction fixes of the VQA evaluation toolkit: "<written without apostrophe> <canonical form>" per line.
# Kept key for key so that scores match the official ones, including the toolkit's own oddity
# "somebody'd" -> "somebodyd". (The toolkit's capitalised keys and identity entries are left out: every
# word is lower-cased before the lookup, so they can never apply.)
_CONTRACTION_TABLE = """
aint ain't
arent aren't
cant can't
couldve could've
couldnt couldn't
couldn'tve couldn't've
couldnt've couldn't've
didnt didn't
doesnt doesn't
dont don't
hadnt hadn't
hadnt've hadn't've
hadn'tve hadn't've
hasnt hasn't
havent haven't
hed he'd
hed've he'd've
he'dve he'd've
hes he's
howd how'd
howll how'll
hows how's
isnt isn't
itd it'd
itd've it'd've
it'dve it'd've
itll it'll
maam ma'am
mightnt mightn't
mightnt've mightn't've
mightn'tve mightn't've
mightve might've
mustnt mustn't
mustve must've
neednt needn't
notve not've
oclock o'clock
oughtnt oughtn't
ow's'at 'ow's'at
'ows'at 'ow's'at
'ow'sat 'ow's'at
shant shan't
shed've she'd've
she'dve she'd've
shouldve should've
shouldnt shouldn't
shouldnt've shouldn't've
shouldn'tve shouldn't've
somebody'd somebodyd
somebodyd've somebody'd've
somebody'dve somebody'd've
somebodyll somebody'll
somebodys somebody's
someoned someone'd
someoned've someone'd've
someone'dve someone'd've
someonell someone'll
someones someone's
somethingd something'd
somethingd've something'd've
something'dve something'd've
somethingll something'll
thats that's
thered there'd
thered've there'd've
there'dve there'd've
therere there're
theres there's
theyd they'd
theyd've they'd've
they'dve they'd've
theyll they'll
theyre they're
theyve they've
twas 'twas
wasnt wasn't
wed've we'd've
we'dve we'd've
weve we've
werent weren't
whatll what'll
whatre what're
whats what's
whatve what've
whens when's
whered where'd
wheres where's
whereve where've
whod who'd
whod've who'd've
who'dve who'd've
wholl who'll
whos who's
whove who've
whyll why'll
whyre why're
whys why's
wont won't
wouldve would've
wouldnt wouldn't
wouldnt've wouldn't've
wouldn'tve wouldn't've
yall y'all
yall'll y'all'll
y'allll y'all'll
yall'd've y'all'd've
y'alld've y'all'd've
y'all'dve y'all'd've
youd you'd
youd've you'd've
you'dve you'd've
youll you'll
youre you're
youve you've
"""


class EvalAIAnswerProcessor:
    """Normalise an answer string like the VQA / EvalAI evaluation: lower-case; drop ',' and '?';
    detach "'s"; punctuation removed where it touches a space (or the text has digit,digit), else turned
    into a space; periods not followed by a digit removed; number words none/zero..ten -> digits; articles
    a/an/the dropped; missing apostrophes restored (CONTRACTIONS)."""

    CONTRACTIONS = dict(line.split() for line in _CONTRACTION_TABLE.strip().splitlines())
    NUMBER_MAP = {word: str(value) for value, word in enumerate(
        ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"])}
    NUMBER_MAP["none"] = "0"
    ARTICLES = {"a", "an", "the"}
    PUNCTUATIONS = [";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`",
                    ",", "?", "!"]
    PERIOD_STRIP = re.compile(r"\.(?!\d)")
    COMMA_STRIP = re.compile(r"(?<=\d),+(?=\d)")
    # The official toolkit passes re.UNICODE (= 32) where re.sub expects `count`, so it removes at most 32
    # periods; kept so that long answers normalise exactly as upstream.
    PERIOD_STRIP_COUNT = 32

    def word_tokenize(self, word: str) -> str:
        return word.lower().replace(",", "").replace("?", "").replace("'s", " 's").strip()

    def process_punctuation(self, in_text: str) -> str:
        has_digit_comma_digit = self.COMMA_STRIP.search(in_text) is not None
        out_text = in_text
        for p in self.PUNCTUATIONS:
            touches_space = (p + " " in in_text) or (" " + p in in_text)
            out_text = out_text.replace(p, "" if touches_space or has_digit_comma_digit else " ")
        return self.PERIOD_STRIP.sub("", out_text, count=self.PERIOD_STRIP_COUNT)

    def process_digit_article(self, in_text: str) -> str:
        words = [self.NUMBER_MAP.get(w, w) for w in in_text.lower().split()]
        words = [self.CONTRACTIONS.get(w, w) for w in words if w not in self.ARTICLES]
        return " ".join(words)

    def __call__(self, item: str) -> str:
        item = self.word_tokenize(item)
        item = item.replace("\n", " ").replace("\t", " ").strip()
        return self.process_digit_article(self.process_punctuation(item))


class TextVQAAccuracyEvaluator:
    """Soft VQA accuracy: a prediction equal (after normalisation) to a human answer scores the mean, over
    the ten leave-one-annotator-out subsets, of min(1, matches among the other nine / 3); otherwise 0."""

    NUM_ANSWERS = 10

    def __init__(self):
        self.answer_processor = EvalAIAnswerProcessor()

    def _compute_answer_scores(self, raw_answers: list[str]) -> dict[str, float]:
        """Score in [0, 1] of each distinct normalised human answer."""
        answers = [self.answer_processor(a) for a in raw_answers]
        if len(answers) != self.NUM_ANSWERS:
            raise ValueError(f"soft VQA accuracy needs exactly {self.NUM_ANSWERS} human answers, got {len(answers)}")
        counts = Counter(answers)
        # Leaving out an annotator who gave `answer` leaves count-1 matches (count of them);
        # leaving out any other annotator leaves count matches (10-count of them).
        return {answer: (count * min(1.0, (count - 1) / 3) + (self.NUM_ANSWERS - count) * min(1.0, count / 3))
                / self.NUM_ANSWERS for answer, count in counts.items()}

    def score(self, pred_answer: str, gt_answers: list[str]) -> float:
        """Soft accuracy in [0, 1] of one prediction."""
        return self._compute_answer_scores(gt_answers).get(self.answer_processor(pred_answer), 0.0)

    def eval_pred_list(self, pred_list: list[dict]) -> float:
        """Mean soft accuracy in [0, 1] over items {"pred_answer": str, "gt_answers": [10 str]}."""
        if not pred_list:
            raise ValueError("eval_pred_list: empty prediction list")
        return sum(self.score(e["pred_answer"], e["gt_answers"]) for e in pred_list) / len(pred_list)


class STVQAAccuracyEvaluator:
    """Exact match after normalisation against any of the ground-truth answers."""

    def __init__(self):
        self.answer_processor = EvalAIAnswerProcessor()

    def score(self, pred_answer: str, gt_answers: list[str]) -> float:
        """1.0 if the normalised prediction equals a normalised ground-truth answer, else 0.0."""
        pred = self.answer_processor(pred_answer)
        return 1.0 if any(pred == self.answer_processor(a) for a in gt_answers) else 0.0

    def eval_pred_list(self, pred_list: list[dict]) -> float:
        """Mean exact-match accuracy in [0, 1] over items {"pred_answer", "gt_answers"}."""
        if not pred_list:
            raise ValueError("eval_pred_list: empty prediction list")
        return sum(self.score(e["pred_answer"], e["gt_answers"]) for e in pred_list) / len(pred_list)
