"""Allow ``python -m ctxscale``."""

from ctxscale.cli import main

raise SystemExit(main())
