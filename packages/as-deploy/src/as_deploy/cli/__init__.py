"""The ``as-deploy`` command line (also ``python -m as_deploy``) and the ``serve`` script.

Commands, one module each: ``serve`` (:mod:`~as_deploy.cli.serve`, the model server),
``export`` (:mod:`~as_deploy.cli.export`, a model to ONNX, Core ML or TFLite with a
parity check, into a repository), ``dockerfile`` (:mod:`~as_deploy.cli.dockerfile`, a
Dockerfile for a repository) and ``pack`` (:mod:`~as_deploy.cli.pack`: export, parity,
repository and Dockerfile in one go). They share the app and the consoles of
:mod:`~as_deploy.cli._common`.

Exit codes: 0 success; 1 a failure; 2 a usage error (an unknown option, a bad value, an
invalid model name). Errors are one line on stderr with the cause and a hint; the global
``--debug`` adds the traceback. Commands raise and :class:`as_core.cli.CommandLine` turns
what they raise into the message and the exit code.

``export`` and ``pack`` need the exporters (``uv add "as-deploy[export]"``); without them
they fail with that command, while ``serve`` and ``dockerfile`` work.
"""

from __future__ import annotations

import sys

from as_deploy.cli import dockerfile, export, pack, serve
from as_deploy.cli._common import app, command_line
from as_deploy.cli._common import stdout as stdout  # the name the old cli module had

__all__ = ["app", "main", "serve_main"]

for _command in (serve, export, dockerfile, pack):
    _command.register(app)


def main(argv: list[str] | None = None, prog_name: str = "as-deploy") -> None:
    """Run the command line: the ``as-deploy`` console script and ``python -m as_deploy``.

    Args:
        argv: The arguments (without the program name); ``sys.argv[1:]`` when ``None``.
        prog_name: The program name shown in help and usage messages.
    """
    command_line.prog_name = prog_name
    command_line.run(argv)


def serve_main(argv: list[str] | None = None) -> None:
    """The ``serve`` console script: ``as-deploy serve`` with the same options."""
    args = list(sys.argv[1:] if argv is None else argv)
    main(["serve", *args])
