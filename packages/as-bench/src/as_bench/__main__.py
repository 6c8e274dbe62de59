"""``python -m as_bench``: the same command line as the ``as-bench`` script."""

from as_bench.cli import main

if __name__ == "__main__":
    main()
