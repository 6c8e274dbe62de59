"""``python -m as_dashboard``: the ``dashboard`` command."""

import sys

from as_dashboard.cli import main

sys.exit(main())
