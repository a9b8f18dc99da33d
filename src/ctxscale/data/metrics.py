"""Per-instance metrics: ``score(metric, output, reference) -> float`` in [0, 1].

The original evaluation's metrics, re-implemented from their definitions:

* ``exact_match``: stripped strings equal (an empty output scores 0).
* ``quasi_exact_match``: equal after lower-casing and removing punctuation, the articles
  a/an/the and extra whitespace (the SQuAD/QuAC normalisation).
* ``mc_match``: the first capital letter A-E anywhere in the output equals the reference
  letter (so "Answer: B" reads as "A", exactly as the original's regex does).
* ``f1``: F1 of the *sets* of normalised tokens of output and reference.
* ``bleu_4``: sentence-level BLEU with weights (0, 0, 0, 1), i.e. brevity penalty times the
  clipped 4-gram precision. No smoothing: no matching 4-gram -> 0 (the original's nltk call
  returns ~1e-308 there). Tokens: nltk's ``word_tokenize`` as the original, with
  ``preserve_line=True``: the original first splits sentences with nltk's punkt model, a data
  download that offline machines lack; the two agree on one-sentence text (a WMT reference;
  an output cut at its first newline) and differ only in whether a period inside a
  multi-sentence text is split from its word.
* ``math_equiv`` (the original's arithmetic metric, the default): the last number
  (``\\d+`` with ``.`` ``,`` ``/`` groups; commas dropped, ``a/b`` divided) of the output and
  of the reference agree within absolute tolerance 1e-3 (inclusive; ``math.isclose`` as the
  original calls it, so its default relative tolerance 1e-9 also applies, which matters only
  above 1e6). A number with several slashes is no number. Signs are ignored, and a side
  without a number scores 0 -- as the original.
* ``math_equiv_answer`` (the corrected arithmetic metric, reported beside ``math_equiv``):
  a reference that is one number is compared with the output's last number, sign included,
  within the same tolerance; any other reference (True/False, an expression, a list) must
  equal the output's first line as a whole, spaces, case and a final period ignored. It
  scores what DeepMind's modules ask where ``math_equiv`` cannot: ``False`` is never
  right, ``-3`` never equals ``3`` and ``2*x + 1`` never equals ``5*x + 1``.

Alternatives, not used by the original's arithmetic sets:

* ``math_boxed``: last ``\\boxed{...}``/``\\fbox{...}`` of each side, compared after the
  classic MATH string normalisation (fractions, roots, units, spaces, ``0.5``...).
* ``math_verify``: the ``math-verify`` library's parse + verify (symbolic equivalence).
* ``bleu_4_13a``: ``bleu_4`` on sacrebleu's 13a tokens (it splits contractions and hyphens
  differently: 0.394 vs 0.455 on one such sentence), the standard MT tokenisation.
* ``sacrebleu``: sacrebleu's smoothed sentence BLEU / 100; :func:`corpus_bleu` gives
  sacrebleu's corpus BLEU over a whole set for reference.
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Callable, Sequence
from functools import lru_cache

from ctxscale.errors import CtxscaleError

# ---------------------------------------------------------------- text normalisation

_PUNCT = set(string.punctuation)


def normalize_text(text: str) -> str:
    """Lower-case, drop punctuation, drop articles, collapse whitespace."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCT)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def exact_match(output: str, reference: str) -> float:
    """1 when the stripped output equals the stripped reference."""
    if not output:
        return 0.0
    return float(output.strip() == reference.strip())


def quasi_exact_match(output: str, reference: str) -> float:
    """1 when output and reference are equal after :func:`normalize_text`."""
    if not output:
        return 0.0
    return float(normalize_text(output) == normalize_text(reference))


_MC_LETTER = re.compile(r"[A-E]")


def mc_match(output: str, reference: str) -> float:
    """1 when the first capital A-E in the output is the reference letter."""
    if not output:
        return 0.0
    found = _MC_LETTER.search(output)
    return float(found is not None and found.group(0) == reference)


def f1(output: str, reference: str) -> float:
    """F1 over the sets of normalised tokens (0 when either side is empty)."""
    if not output:
        return 0.0
    pred = set(normalize_text(output).split())
    gold = set(normalize_text(reference).split())
    if not pred or not gold:
        return 0.0
    common = len(pred & gold)
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(gold)
    return 2 * precision * recall / (precision + recall)


# ---------------------------------------------------------------- BLEU


@lru_cache(maxsize=1)
def _tokenizer_13a() -> Callable[[str], str]:
    from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

    return Tokenizer13a()


def bleu_tokens(text: str) -> list[str]:
    """Tokens for :func:`bleu_4`: nltk's ``word_tokenize`` without the punkt sentence split."""
    from nltk.tokenize import word_tokenize

    return word_tokenize(text.strip(), preserve_line=True)


def bleu_tokens_13a(text: str) -> list[str]:
    """Tokens for :func:`bleu_4_13a`: sacrebleu's 13a tokenisation split on spaces."""
    return _tokenizer_13a()(text.strip()).split()


def _ngrams(tokens: Sequence[str], n: int) -> Counter:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def bleu_4(output: str, reference: str) -> float:
    """Sentence BLEU with weights (0, 0, 0, 1) on nltk word tokens (the original's metric)."""
    return _bleu_4(output, reference, bleu_tokens)


def bleu_4_13a(output: str, reference: str) -> float:
    """:func:`bleu_4` on sacrebleu's 13a tokens."""
    return _bleu_4(output, reference, bleu_tokens_13a)


def _bleu_4(output: str, reference: str, tokens: Callable[[str], list[str]]) -> float:
    """Brevity penalty x clipped 4-gram precision of ``output`` against ``reference``."""
    if not output:
        return 0.0
    hyp, ref = tokens(output), tokens(reference)
    hyp4 = _ngrams(hyp, 4)
    total = sum(hyp4.values())
    if total == 0:
        return 0.0
    ref4 = _ngrams(ref, 4)
    matched = sum(min(count, ref4[gram]) for gram, count in hyp4.items())
    if matched == 0:
        return 0.0
    c, r = len(hyp), len(ref)
    brevity = 1.0 if c > r else math.exp(1.0 - r / c)
    return brevity * matched / total


def sacrebleu_sentence(output: str, reference: str) -> float:
    """sacrebleu's sentence BLEU (exp smoothing, 1-4-gram mean) / 100, float error clipped."""
    import sacrebleu

    if not output:
        return 0.0
    return min(1.0, sacrebleu.sentence_bleu(output, [reference]).score / 100.0)


def corpus_bleu(outputs: Sequence[str], references: Sequence[str]) -> float:
    """sacrebleu's corpus BLEU (standard 13a, 4-gram geometric mean) scaled to [0, 1]."""
    import sacrebleu

    if len(outputs) != len(references):
        raise CtxscaleError(f"{len(outputs)} outputs but {len(references)} references")
    return min(1.0, sacrebleu.corpus_bleu(list(outputs), [list(references)]).score / 100.0)


# ---------------------------------------------------------------- math

_NUMBER = re.compile(r"\d+(?:[.,/]\d+)*")


def _number_value(text: str) -> float:
    text = text.replace(",", "")
    if text.count("/") == 1:
        numerator, denominator = text.split("/")
        return float(numerator) / float(denominator)
    return float(text)


def last_number(text: str) -> float | None:
    """The last number of a text as the original reads it (no sign), or None."""
    found = _NUMBER.findall(text or "")
    if not found:
        return None
    try:
        return _number_value(found[-1])
    except (ValueError, ZeroDivisionError):
        return None


def _agree(gold: float | None, pred: float | None, tol: float) -> float:
    """1.0 where both numbers exist and agree within absolute ``tol`` (``math.isclose`` also
    keeps its relative tolerance of 1e-9, as the original's call does)."""
    if gold is None or pred is None:
        return 0.0
    return float(math.isclose(gold, pred, abs_tol=tol))


def math_equiv(output: str, reference: str, tol: float = 1e-3) -> float:
    """The original's arithmetic metric: last numbers agree within absolute ``tol``."""
    return _agree(last_number(reference), last_number(output), tol)


_SIGNED_NUMBER = re.compile(r"-?\s*(\d+(?:[.,/]\d+)*)")
_ONE_NUMBER = re.compile(r"-?\d+(?:[.,/]\d+)*")


def _signed_last_number(text: str) -> float | None:
    found = list(_SIGNED_NUMBER.finditer(text or ""))
    if not found:
        return None
    last = found[-1]
    try:
        value = _number_value(last.group(1))
    except (ValueError, ZeroDivisionError):
        return None
    return -value if last.group(0).startswith("-") else value


def _whole_answer(text: str) -> str:
    first = (text or "").strip().split("\n", 1)[0]
    return "".join(first.split()).rstrip(".").casefold()


def math_equiv_answer(output: str, reference: str, tol: float = 1e-3) -> float:
    """The corrected arithmetic metric: a one-number reference is compared with the output's
    last number, sign included; any other reference must equal the output's first line."""
    if _ONE_NUMBER.fullmatch(reference.strip()):
        return _agree(_signed_last_number(reference), _signed_last_number(output), tol)
    return float(
        bool(_whole_answer(reference)) and _whole_answer(output) == _whole_answer(reference)
    )


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` (or ``\\fbox{...}``), braces balanced, or None."""
    start = text.rfind("\\boxed")
    if start < 0:
        start = text.rfind("\\fbox")
        if start < 0:
            return None
    depth = 0
    open_at = None
    for i in range(start, len(text)):
        if text[i] == "{":
            depth += 1
            if open_at is None:
                open_at = i
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[open_at + 1 : i] if open_at is not None else None
    return None


def _fix_fracs(s: str) -> str:
    parts = s.split("\\frac")
    out = parts[0]
    for part in parts[1:]:
        out += "\\frac"
        if part.startswith("{"):
            out += part
            continue
        if len(part) < 2:
            return s
        a, b, rest = part[0], part[1], part[2:]
        out += "{" + a + "}" + (b + rest if b == "{" else "{" + b + "}" + rest)
    return out


def _fix_a_slash_b(s: str) -> str:
    m = re.fullmatch(r"(-?\d+)/(-?\d+)", s)
    if not m:
        return s
    return "\\frac{" + str(int(m.group(1))) + "}{" + str(int(m.group(2))) + "}"


def _fix_sqrt(s: str) -> str:
    return re.sub(r"\\sqrt(\w)", r"\\sqrt{\1}", s)


def normalize_math(s: str) -> str:
    """The classic MATH answer normalisation (Hendrycks et al.), re-implemented."""
    s = s.replace("\n", "").replace("\\!", "").replace("\\\\", "\\")
    s = s.replace("tfrac", "frac").replace("dfrac", "frac")
    s = s.replace("\\left", "").replace("\\right", "")
    s = s.replace("^{\\circ}", "").replace("^\\circ", "")
    s = s.replace("\\$", "")
    if "\\text{ " in s:  # units on the right
        s = s.split("\\text{ ")[0]
    s = s.replace("\\%", "").replace("%", "")
    s = s.replace(" .", " 0.").replace("{.", "{0.")
    if not s:
        return s
    if s[0] == ".":
        s = "0" + s
    lhs_rhs = s.split("=")
    if len(lhs_rhs) == 2 and len(lhs_rhs[0]) <= 2:
        s = lhs_rhs[1]
    s = _fix_sqrt(s)
    s = s.replace(" ", "")
    s = _fix_fracs(s)
    if s == "0.5":
        s = "\\frac{1}{2}"
    return _fix_a_slash_b(s)


def math_boxed(output: str, reference: str) -> float:
    """Last boxed answers of both sides equal after :func:`normalize_math`.

    A reference without a box is used whole (DeepMind/GSM-style short answers).
    """
    gold = last_boxed(reference)
    if gold is None:
        gold = reference.split("####")[-1].strip()
    pred = last_boxed(output or "")
    if pred is None:
        return 0.0
    return float(normalize_math(gold) == normalize_math(pred))


def math_verify(output: str, reference: str) -> float:
    """Symbolic equivalence by the ``math-verify`` library (boxed/last answer of each side)."""
    from math_verify import parse, verify

    if not output:
        return 0.0
    gold = last_boxed(reference)
    gold_text = f"${gold}$" if gold is not None else reference.split("####")[-1].strip()
    try:
        parsed_gold = parse(gold_text, parsing_timeout=None)
        parsed_pred = parse(output, parsing_timeout=None)
        return float(bool(verify(parsed_gold, parsed_pred, timeout_seconds=None)))
    except Exception:  # math-verify raises on exotic LaTeX; that is a miss, not a crash
        return 0.0


METRICS: dict[str, Callable[[str, str], float]] = {
    "exact_match": exact_match,
    "quasi_exact_match": quasi_exact_match,
    "mc_match": mc_match,
    "f1": f1,
    "bleu_4": bleu_4,
    "bleu_4_13a": bleu_4_13a,
    "sacrebleu": sacrebleu_sentence,
    "math_equiv": math_equiv,
    "math_equiv_answer": math_equiv_answer,
    "math_boxed": math_boxed,
    "math_verify": math_verify,
}


def check_metric(name: str) -> str:
    """Return ``name`` if it is a known metric, else raise listing the known names."""
    if name not in METRICS:
        raise CtxscaleError(f"unknown metric {name!r}; known metrics: {', '.join(sorted(METRICS))}")
    return name


def score(metric: str, output: str | None, reference: str | list[str]) -> float:
    """Score one output; a list of references takes the best (as the original)."""
    fn = METRICS[check_metric(metric)]
    text = output or ""
    if isinstance(reference, list):
        return max((fn(text, ref) for ref in reference), default=0.0)
    return float(fn(text, reference))
