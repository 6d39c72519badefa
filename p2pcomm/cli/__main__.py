"""``python -m p2pcomm.cli``."""

from .main import main

raise SystemExit(main())
