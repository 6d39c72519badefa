"""``python -m p2pcomm``."""

from .cli.main import main

raise SystemExit(main())
