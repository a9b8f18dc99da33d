"""Golden tests for the metrics on hand-written cases."""

import math

import pytest

from ctxscale.data import metrics
from ctxscale.data.metrics import score
from ctxscale.errors import CtxscaleError


@pytest.mark.parametrize(
    ("output", "reference", "expected"),
    [
        (" 42 \n", "42", 1.0),
        ("42.", "42", 0.0),
        ("", "", 0.0),  # an empty output never matches
    ],
)
def test_exact_match(output, reference, expected):
    assert score("exact_match", output, reference) == expected


@pytest.mark.parametrize(
    ("output", "reference", "expected"),
    [
        ("The Eiffel  Tower!", "eiffel tower", 1.0),
        ("an apple", "Apple.", 1.0),
        ("apples", "apple", 0.0),
    ],
)
def test_quasi_exact_match(output, reference, expected):
    assert score("quasi_exact_match", output, reference) == expected


@pytest.mark.parametrize(
    ("output", "reference", "expected"),
    [
        (" B", "B", 1.0),
        (" B. because", "B", 1.0),
        ("(c) C", "C", 1.0),  # lower-case letters do not count
        (" Answer: B", "B", 0.0),  # the 'A' of 'Answer' comes first, as in the original
        ("none", "A", 0.0),
        ("F G", "A", 0.0),
    ],
)
def test_mc_match_reads_first_capital_a_to_e(output, reference, expected):
    assert score("mc_match", output, reference) == expected


def test_f1_is_over_token_sets():
    # pred {cat, sat}, gold {cat, sat, on, mat}: P = 1, R = 0.5 -> F1 = 2/3
    assert score("f1", "The cat sat", "the cat sat on the mat") == pytest.approx(2 / 3)
    assert score("f1", "cat cat cat", "cat") == 1.0  # sets, not bags
    assert score("f1", "dog", "cat") == 0.0
    assert score("f1", "the", "cat") == 0.0  # only an article: empty after normalising


def test_bleu_4_is_brevity_times_4gram_precision():
    ref = "the cat sat on the mat today"
    assert score("bleu_4", ref, ref) == 1.0
    # hyp 'the cat sat on the mat': 3 of 3 4-grams match; c=6 < r=7 -> BP = exp(1 - 7/6)
    assert score("bleu_4", "the cat sat on the mat", ref) == pytest.approx(math.exp(1 - 7 / 6))
    # 'the cat sat on a mat today': 4-grams: (the cat sat on) matches, 3 others do not -> 1/4
    assert score("bleu_4", "the cat sat on a mat today", ref) == pytest.approx(0.25)
    # no 4-gram in common (or fewer than 4 tokens): 0 without smoothing
    assert score("bleu_4", "a dog ran", ref) == 0.0
    assert score("bleu_4", "mat the on sat cat the today", ref) == 0.0


def test_bleu_4_clips_repeated_ngrams_and_tokenizes_punctuation():
    # hyp has 5 4-grams, 'a b c d' twice; ref has it once -> 1 clipped match of 5
    assert metrics.bleu_4("a b c d a b c d", "a b c d") == pytest.approx(1 / 5)
    assert metrics.bleu_tokens("Hello, world.") == ["Hello", ",", "world", "."]


# One-sentence translations with contractions, hyphens, quotes and numbers: where the
# original's tokenizer (nltk) and sacrebleu's 13a disagree.
_BLEU_PAIRS = [
    ("It isn't a 5-year-old plan, he said.", "It isn't a 5-year-old plan, he told us."),
    ("The company's shares rose 3.5% on Monday.", "The company's shares rose 3.5% on Tuesday."),
    ('"We can\'t wait," she said of the long-awaited vote.', '"We can\'t wait," she said.'),
    ("The U.S. economy grew by 2.1 percent", "The U.S. economy grew 2.1 percent in total"),
]


@pytest.mark.parametrize(("output", "reference"), _BLEU_PAIRS)
def test_bleu_4_equals_the_originals_nltk_sentence_bleu(output, reference):
    """The oracle is the original's call itself: nltk's sentence_bleu on word_tokenize tokens
    with weights (0, 0, 0, 1) (one-sentence text, so no sentence split is needed)."""
    from nltk.tokenize import NLTKWordTokenizer
    from nltk.translate.bleu_score import sentence_bleu

    tok = NLTKWordTokenizer().tokenize
    expected = sentence_bleu([tok(reference)], tok(output), weights=(0, 0, 0, 1))
    assert metrics.bleu_4(output, reference) == pytest.approx(expected, abs=1e-12)


def test_bleu_4_13a_tokenizes_contractions_differently():
    out, ref = _BLEU_PAIRS[0]
    assert metrics.bleu_tokens("isn't a 5-year-old") == ["is", "n't", "a", "5-year-old"]
    assert metrics.bleu_tokens_13a("isn't a 5-year-old") == ["isn't", "a", "5", "-", "year-old"]
    assert score("bleu_4", out, ref) == pytest.approx(0.6463, abs=1e-4)
    assert score("bleu_4_13a", out, ref) == pytest.approx(0.6848, abs=1e-4)


def test_sacrebleu_sentence_and_corpus_bleu():
    ref = "the cat sat on the mat"
    assert score("sacrebleu", ref, ref) == pytest.approx(1.0)
    assert 0.0 < score("sacrebleu", "the cat sat on a mat", ref) < 1.0
    assert metrics.corpus_bleu([ref, "a b c d"], [ref, "a b c d"]) == pytest.approx(1.0)
    with pytest.raises(CtxscaleError):
        metrics.corpus_bleu([ref], [])


@pytest.mark.parametrize(
    ("output", "reference", "expected"),
    [
        ("She has 18 apples. So the answer is 18", "... #### 18", 1.0),
        ("The total is 1,234 dollars", "#### 1234", 1.0),
        ("1/2", "0.5", 1.0),
        ("0.3334", "1/3", 1.0),  # within 1e-3
        ("0.335", "1/3", 0.0),
        ("-5", "5", 1.0),  # signs are ignored, as in the original
        ("The answer is 7", "6", 0.0),
        ("no number", "6", 0.0),
        ("b", "b", 0.0),  # no number on either side: 0 (the original catches the error)
        ("3/0", "3", 0.0),
    ],
)
def test_math_equiv_last_number(output, reference, expected):
    assert score("math_equiv", output, reference) == expected


MATH_CASES = [
    # (model output, MATH reference solution, classic boxed, math-verify)
    ("So $x = \\boxed{\\frac{1}{2}}$.", "Thus $\\boxed{\\frac12}$.", 1.0, 1.0),
    ("The answer is $\\boxed{0.5}$", "We get $\\boxed{\\dfrac{1}{2}}$.", 1.0, 1.0),
    ("$\\boxed{2\\sqrt{2}}$", "so $\\boxed{\\sqrt{8}}$", 0.0, 1.0),
    ("$\\boxed{x^2+2x+1}$", "$\\boxed{(x+1)^2}$", 0.0, 1.0),
    ("$\\boxed{10\\%}$", "$\\boxed{10}$", 1.0, 1.0),
    ("$\\boxed{3}$", "$\\boxed{4}$", 0.0, 0.0),
    ("I think 5", "$\\boxed{5}$", 0.0, 1.0),  # no box in the output
]


@pytest.mark.parametrize(("output", "reference", "boxed", "verified"), MATH_CASES)
def test_math_boxed_vs_math_verify(output, reference, boxed, verified):
    assert score("math_boxed", output, reference) == boxed
    assert score("math_verify", output, reference) == verified


def test_math_metrics_disagree_on_math_style_answers():
    """The default (last number) misreads fractions that the alternatives handle."""
    output, reference = "$\\boxed{\\frac{1}{2}}$", "so the answer is $\\boxed{\\frac{1}{2}}$"
    assert score("math_equiv", output, reference) == 1.0  # both read '2'
    wrong = "$\\boxed{\\frac{3}{2}}$"
    assert score("math_equiv", wrong, reference) == 1.0  # still '2': a false positive
    assert score("math_boxed", wrong, reference) == 0.0
    assert score("math_verify", wrong, reference) == 0.0
    agree = sum(
        score("math_boxed", o, r) == score("math_verify", o, r) for o, r, _, _ in MATH_CASES
    )
    assert agree == 4


def test_last_boxed_balances_braces():
    assert metrics.last_boxed("a \\boxed{1} b \\boxed{\\frac{1}{2}} c") == "\\frac{1}{2}"
    assert metrics.last_boxed("\\fbox{7}") == "7"
    assert metrics.last_boxed("\\boxed{open") is None
    assert metrics.last_boxed("none") is None


def test_normalize_math():
    assert metrics.normalize_math("\\dfrac12") == "\\frac{1}{2}"
    assert metrics.normalize_math("x = 3") == "3"
    assert metrics.normalize_math("\\sqrt2") == "\\sqrt{2}"
    assert metrics.normalize_math("5\\text{ cm}") == "5"
    assert metrics.normalize_math("3/4") == "\\frac{3}{4}"
    assert metrics.normalize_math(".5") == "\\frac{1}{2}"


def test_score_takes_best_of_several_references_and_handles_none():
    assert score("exact_match", "b", ["a", "b"]) == 1.0
    assert score("exact_match", None, "a") == 0.0
    for name in metrics.METRICS:
        value = score(name, "some output 3", "some output 3")
        assert 0.0 <= value <= 1.0


def test_unknown_metric_lists_known_names():
    with pytest.raises(CtxscaleError, match="known metrics: .*bleu_4.*math_equiv"):
        score("accuracy", "a", "a")
