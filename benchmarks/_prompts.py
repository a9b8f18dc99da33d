"""Seeded DeepMind-Mathematics-style arithmetic prompts for the benchmarks.

Questions mimic the arithmetic modules (add_or_sub, mul, add_sub_multiple); the prefix is
``n_shots`` demonstrations, the suffix one question, as in ``ctxscale prepare``'s output.
"""

from __future__ import annotations

import random

TEMPLATES = [
    ("What is {a} + {b}?", lambda a, b: a + b),
    ("Calculate {a} - {b}.", lambda a, b: a - b),
    ("Work out {a} * {b}.", lambda a, b: a * b),
    ("Add {a} and {b}.", lambda a, b: a + b),
    ("What is {a} - {b}?", lambda a, b: a - b),
    ("Sum {a} and {b}.", lambda a, b: a + b),
]


def question(rng: random.Random) -> tuple[str, str]:
    text, fn = TEMPLATES[rng.randrange(len(TEMPLATES))]
    a, b = rng.randint(-20, 40), rng.randint(0, 12)
    return text.format(a=a, b=b), str(fn(a, b))


def make_prompts(n_shots: int, n_instances: int, seed: int = 31337) -> dict:
    """A prompts-file dict with ``n_shots`` demonstrations."""
    rng = random.Random(seed)
    demos = [question(rng) for _ in range(n_shots)]
    test = [question(rng) for _ in range(n_instances)]
    prefix = "".join(f"Question: {q}\nAnswer: {a}\n\n" for q, a in demos)
    return {
        "dataset": "dm_math_arithmetic_style",
        "task": "arithmetic",
        "n_shots": n_shots,
        "seed": seed,
        "prefix": prefix,
        "stop": ["\n\n"],
        "max_new_tokens": 16,
        "metric": "math_equiv",
        "instances": [
            {"id": str(i), "suffix": f"Question: {q}\nAnswer:", "reference": a}
            for i, (q, a) in enumerate(test)
        ],
    }
