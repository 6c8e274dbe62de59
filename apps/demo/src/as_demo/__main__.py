"""``python -m as_demo``: the ``demo`` command."""

from as_demo.cli import main

main()
