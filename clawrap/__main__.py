"""``python -m clawrap``: the command line (see :mod:`clawrap.cli._main`)."""

from clawrap.cli._main import main

raise SystemExit(main())
