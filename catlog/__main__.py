"""``python -m catlog``: the same command line as the ``catlog`` script."""

from .cli import main

raise SystemExit(main())
