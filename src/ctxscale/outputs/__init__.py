"""Outputs: what people look at, drawn from the analysis's files.

In: ``results/scores.csv``, ``points.csv``, fits and predictions (read by ``results``).
Out: the catalogued figures (``figures``) and tables (``tables``) under ``figures/`` and
``results/tables/``, ``results/manifest.tsv`` (``manifest``) and the paper report
(``report``); ``render`` is the CLI that draws one catalog entry.
"""
