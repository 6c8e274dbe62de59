"""``python -m as_config``: the same command line as ``as-config``."""

from as_config.cli import main

if __name__ == "__main__":
    main()
