"""Allow ``python -m ctxscale``."""

from ctxscale.cli import run

run()
