"""``python -m as_deploy``: the ``as-deploy`` command line."""

from as_deploy.cli import main

if __name__ == "__main__":
    main()
