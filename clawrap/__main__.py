"""``python -m clawrap``: the command line (see :mod:`clawrap._cli`)."""

from ._cli import main

raise SystemExit(main())
