"""`math_equiv` pinned at its boundaries, with the expected values worked out by hand.

The original's metric (the authors' ``metrics.py``): the last ``\\d+(?:[.,/]\\d+)*`` of each
side, commas dropped, one ``a/b`` divided, then ``math.isclose(gold, pred, abs_tol=1e-3)``.
So the tolerance is absolute 1e-3, inclusive, plus Python's default relative tolerance 1e-9,
which only matters above 1e6 (1e-9 x 1e6 = 1e-3).
"""

import pytest

from ctxscale.data.metrics import last_number, math_equiv, score


@pytest.mark.parametrize(
    ("output", "reference", "expected"),
    [
        ("1", "1", 1.0),
        ("1.0009", "1", 1.0),  # |diff| 9e-4 < 1e-3
        ("1.0011", "1", 0.0),  # |diff| 1.1e-3 > 1e-3 (1.5e-3 would accept it)
        ("0.9991", "1", 1.0),
        ("0.9989", "1", 0.0),
        ("0.0005", "0", 1.0),  # near zero: an absolute tolerance still accepts
        ("0.00095", "0", 1.0),  # 1e-4 would reject it
        ("0.0015", "0", 0.0),
        ("0.002", "0.001", 1.0),  # exactly 1e-3 apart: inclusive (isclose uses <=)
        ("0.001", "0", 1.0),
    ],
)
def test_tolerance_is_absolute_1e_3_inclusive(output, reference, expected):
    assert math_equiv(output, reference) == expected


@pytest.mark.parametrize(
    ("output", "reference", "expected"),
    [
        ("1000001", "1000000", 0.0),  # relative 1e-6, absolute 1: wrong
        ("100001", "100000", 0.0),
        ("1000000.0009", "1000000", 1.0),
        ("1000000.002", "1000000", 0.0),
        ("12,345,679", "12345678", 0.0),
        ("12,345,678", "12345678", 1.0),
        # Above 1e6 Python's default rel_tol=1e-9 (kept by the original's isclose call)
        # exceeds 1e-3: 123456789013 vs 123456789012 differ by 1 < 1e-9 x 1.2e11 = 123.
        ("123456789013", "123456789012", 1.0),
        ("123456790012", "123456789012", 0.0),  # 1000 apart: beyond 123
    ],
)
def test_large_numbers_are_compared_absolutely(output, reference, expected):
    assert math_equiv(output, reference) == expected


@pytest.mark.parametrize(
    ("output", "reference", "expected"),
    [
        ("3 apples and 4 pears make 7", "7", 1.0),
        ("3 apples and 4 pears make 7", "3", 0.0),
        ("The answer is 12. Check: 12 = 3 x 4", "4", 1.0),
        ("The answer is 12. Check: 12 = 3 x 4", "12", 0.0),
        ("42", "Natalia sold 48/2 = 24 clips in May, 48 + 24 = 72 in all.\n#### 72", 0.0),
        ("72", "Natalia sold 48/2 = 24 clips in May, 48 + 24 = 72 in all.\n#### 72", 1.0),
        ("5 then 6", "6 then 5", 0.0),
    ],
)
def test_the_last_number_of_each_side_counts(output, reference, expected):
    assert math_equiv(output, reference) == expected


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("x = 3/4", 0.75),
        ("3/4 of 12/5", 2.4),  # the last fraction, divided
        ("1,234/2", 617.0),  # commas dropped before dividing
        ("a list 1,2,3", 123.0),  # commas dropped: the original reads 123
        ("1.5.2", None),  # not a number: float() fails, as in the original
        ("1/2/3", None),  # several slashes: not divided, not a number
        ("on 12/25/2020", None),
        ("3/0", None),
        ("-7", 7.0),  # no sign
        ("", None),
    ],
)
def test_last_number_reads_fractions_commas_and_slashes(text, value):
    assert last_number(text) == value


def test_numbers_with_several_slashes_never_match():
    assert math_equiv("1/2/3", "1/2/3") == 0.0
    assert math_equiv("1/6", "1/2/3") == 0.0  # (1/2)/3 is not taken
    assert math_equiv("6/4", "3/2") == 1.0
    assert math_equiv("0.667", "2/3") == 1.0  # |0.667 - 0.6667| = 3.3e-4
    assert math_equiv("0.668", "2/3") == 0.0  # 1.33e-3


def test_score_takes_the_best_of_several_references():
    assert score("math_equiv", "The answer is 8", ["7", "8"]) == 1.0
    assert score("math_equiv", "The answer is 9", ["7", "8"]) == 0.0


@pytest.mark.parametrize(
    ("output", "reference", "original", "corrected"),
    [
        # True/False: the original finds no number and scores every answer 0
        (" False", "False", 0.0, 1.0),
        ("false.", "False", 0.0, 1.0),
        ("True", "False", 0.0, 0.0),
        ("", "False", 0.0, 0.0),
        # signs: the original ignores them, the corrected metric does not
        ("3", "-3", 1.0, 0.0),
        ("-3", "-3", 1.0, 1.0),
        ("x = -3.0005", "-3", 1.0, 1.0),
        ("- 4", "-4", 1.0, 1.0),
        # the same tolerance for a one-number reference
        ("1/2", "0.5", 1.0, 1.0),
        ("0.502", "0.5", 0.0, 0.0),
        # an expression: the original compares last numbers only
        ("2*x + 1", "5*x + 1", 1.0, 0.0),
        ("2*x+1\nQuestion: next", "2*x + 1", 1.0, 1.0),
        # a list is one answer as a whole
        ("1, 2, 3", "1, 2, 3", 1.0, 1.0),
        ("1, 3, 3", "1, 2, 3", 1.0, 0.0),
    ],
)
def test_the_corrected_metric_scores_what_deepmind_asks(output, reference, original, corrected):
    assert score("math_equiv", output, reference) == original
    assert score("math_equiv_answer", output, reference) == corrected
