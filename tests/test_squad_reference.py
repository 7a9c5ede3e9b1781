"""Our answer metrics against the SQuAD v1.1 reference scorer, on a few thousand generated answer pairs and on
real-looking ones.

The reference functions below are re-typed from the official SQuAD v1.1 evaluation script (``evaluate-v1.1.py``,
Rajpurkar et al. 2016, distributed with the dataset at https://rajpurkar.github.io/SQuAD-explorer/; the same
functions ship as ``src/oqaeval/squad_evaluate.py`` in ehsk/OpenQA-eval). They are kept as the script has them
(``metric_max_over_ground_truths`` included) so that any difference is ours.

Where we differ on purpose: the reference's EM calls an empty prediction correct when a gold answer also normalises
to nothing (``""`` vs ``"*"``); ours never matches a gold answer that normalises to nothing, so an empty answer scores
0 on every metric. That is the only difference the tests allow.
"""
from __future__ import annotations

import random
import re
import string
from collections import Counter

import pytest

from bench.metrics import answer_metrics, best_token_f1, exact_match, normalize_answer, token_f1


# --- the reference (SQuAD v1.1 evaluate-v1.1.py) -----------------------------------------------------------------

def ref_normalize_answer(s):
    """Lower text and remove punctuation, articles and extra whitespace."""
    def remove_articles(text):
        return re.sub(r'\b(a|an|the)\b', ' ', text)

    def white_space_fix(text):
        return ' '.join(text.split())

    def remove_punc(text):
        exclude = set(string.punctuation)
        return ''.join(ch for ch in text if ch not in exclude)

    def lower(text):
        return text.lower()

    return white_space_fix(remove_articles(remove_punc(lower(s))))


def ref_f1_score(prediction, ground_truth):
    prediction_tokens = ref_normalize_answer(prediction).split()
    ground_truth_tokens = ref_normalize_answer(ground_truth).split()
    common = Counter(prediction_tokens) & Counter(ground_truth_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / len(prediction_tokens)
    recall = 1.0 * num_same / len(ground_truth_tokens)
    f1 = (2 * precision * recall) / (precision + recall)
    return f1


def ref_exact_match_score(prediction, ground_truth):
    return ref_normalize_answer(prediction) == ref_normalize_answer(ground_truth)


def ref_metric_max_over_ground_truths(metric_fn, prediction, ground_truths):
    scores_for_ground_truths = []
    for ground_truth in ground_truths:
        score = metric_fn(prediction, ground_truth)
        scores_for_ground_truths.append(score)
    return max(scores_for_ground_truths)


# --- answer pairs --------------------------------------------------------------------------------------------------

# Words chosen to hit every rule: articles (also inside words: "theatre", "another", "banana"), punctuation glued to
# words and standing alone, case, digits, non-ASCII letters and punctuation outside string.punctuation, whitespace
# of several kinds, and tokens that normalise to nothing.
VOCABULARY = ["the", "The", "THE", "a", "A", "an", "An", "theatre", "another", "banana", "cat", "Cat", "cats", "dog",
              "U.S.", "USA", "u.s.a", "1990", "1,000", "2018-01-01", "Paris,", "(France)", "don't", "O'Brien",
              "Zoë", "naïve", "café", "—", "–", "“quoted”", "«x»", "...", "*", "×", "!", "?", "-", "&", "$5",
              "ﬁsh", "ΑΒΓ", "straße", "İstanbul", "\u00a0", "x", "y", "New", "York", "new-york"]
SEPARATORS = [" ", " ", " ", "  ", "\t", "\n", ""]

REAL_PAIRS = [  # (prediction, gold answers): shapes seen in open-domain QA outputs (NQ-open style)
    ("14 december 1972", ["14 December 1972 UTC", "December 1972"]),
    ("bobby scott", ["Bobby Scott", "Bob Russell"]),
    ("The lyrics were written by Bobby Scott and Bob Russell.", ["Bobby Scott", "Bob Russell"]),
    ("", ["a rotationally symmetric saltire", "the symbol ×", "*"]),
    ("×", ["a rotationally symmetric saltire", "the symbol ×", "*"]),
    ("the symbol ×", ["a rotationally symmetric saltire", "the symbol ×", "*"]),
    ("Washington, D.C.", ["Washington, D.C.", "Washington metropolitan area"]),
    ("washington, d. c.", ["Washington, D.C."]),
    ("The Baylor Lady Bears won the 2020 NCAA Women's Basketball Championship.", ["South Carolina"]),
    ("2.4 billion years ago", ["2.4 billion years ago", "2,400 million years ago"]),
    ("I don't know", ["Anakin Skywalker"]),
    ("Anakin Skywalker", ["Anakin Skywalker"]),
    ("Steven \"Steve\" Kynman", ["Steven Kynman"]),
    ("the the the", ["the"]),
    ("", [""]),
    ("...", ["?"]),
    (" ", ["an"]),
    ("An", ["an apple", "the"]),
]


def generated_pairs(n: int, seed: int = 0) -> list[tuple[str, list[str]]]:
    """Random short answers over VOCABULARY; gold lists of 1-3 answers; a quarter of predictions copy or edit a gold
    answer so that partial and full matches are frequent."""
    rng = random.Random(seed)

    def text() -> str:
        words = rng.choices(VOCABULARY, k=rng.randint(0, 5))
        return "".join(w + rng.choice(SEPARATORS) for w in words)

    pairs = []
    for _ in range(n):
        gold = [text() for _ in range(rng.randint(1, 3))]
        prediction = text()
        if rng.random() < 0.25:
            prediction = rng.choice(gold).upper() if rng.random() < 0.5 else rng.choice(gold) + " " + text()
        pairs.append((prediction, gold))
    return pairs


PAIRS = generated_pairs(4000) + REAL_PAIRS


def test_the_generated_pairs_cover_every_case():
    """Without these cases the comparison below would prove little: full and partial matches, misses, empty
    predictions and gold answers that normalise to nothing."""
    f1 = [ref_metric_max_over_ground_truths(ref_f1_score, p, g) for p, g in PAIRS]
    em = [ref_metric_max_over_ground_truths(ref_exact_match_score, p, g) for p, g in PAIRS]
    assert sum(em) > 300 and sum(0 < x < 1 for x in f1) > 300 and sum(x == 0 for x in f1) > 300
    assert sum(not ref_normalize_answer(p) for p, _ in PAIRS) > 100
    assert sum(any(not ref_normalize_answer(x) for x in g) for _, g in PAIRS) > 300


@pytest.mark.parametrize("prediction, gold", PAIRS[:1] + REAL_PAIRS)
def test_normalisation_is_the_reference(prediction, gold):
    for text in [prediction, *gold]:
        assert normalize_answer(text) == ref_normalize_answer(text)


def test_normalisation_f1_and_em_agree_with_the_reference_on_every_pair():
    for prediction, gold in PAIRS:
        for text in [prediction, *gold]:
            assert normalize_answer(text) == ref_normalize_answer(text), text
        for g in gold:
            assert token_f1(prediction, g) == ref_f1_score(prediction, g), (prediction, g)
        assert best_token_f1(prediction, gold) == ref_metric_max_over_ground_truths(ref_f1_score, prediction, gold)
        ref_em = ref_metric_max_over_ground_truths(ref_exact_match_score, prediction, gold)
        if normalize_answer(prediction):
            assert exact_match(prediction, gold) == float(ref_em), (prediction, gold)
        else:   # the one deliberate difference: an empty answer never matches (the reference's EM says 1 vs "*")
            assert exact_match(prediction, gold) == 0.0


def test_an_empty_answer_scores_zero_on_every_metric():
    """The OpenQA-eval case: an empty prediction against gold answers one of which ("*") normalises to nothing.
    SQuAD v2.0's F1 convention (both empty -> 1.0) rewarded it with F1 1.0, also as RRPO's training reward."""
    from bench.types import Query
    from rrpo.rewards import answer_metric

    gold = ["a rotationally symmetric saltire", "the symbol ×", "*"]
    assert ref_metric_max_over_ground_truths(ref_f1_score, "", gold) == 0
    assert answer_metrics("", gold) == {"EM": 0.0, "F1": 0.0, "accuracy": 0.0}
    assert answer_metrics("the ?!", ["an", "..."]) == {"EM": 0.0, "F1": 0.0, "accuracy": 0.0}
    assert token_f1("", "") == 0.0 and token_f1("the", "*") == 0.0
    query = Query("q", "what is the multiplication sign", answers=gold)
    assert answer_metric("F1")([query, query], ["", "the symbol ×"]) == [0.0, 1.0]
