"""Analysis: from generations to scores, points, and fits of the law.

In: shards under ``results/generations/`` and the prompts files' references. Out:
``results/scores.csv`` and ``points.csv`` (``aggregate``, checked by ``points``), and
``results/fits/*.json`` with predictions (``fit`` and ``fit_cli``), all read by
:mod:`ctxscale.outputs`.

``law`` is the paper's law, ``P(C, n_pmt, n_ctx)``, with its analytic jacobian; ``fit``
fits its parameters per task (differential evolution, then a local optimiser).
"""
