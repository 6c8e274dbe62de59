"""``dashboard``: start the Streamlit dashboard, headless and offline.

::

    uv run --package as-dashboard dashboard                       # http://127.0.0.1:8501
    dashboard --store as-bench-results --server-url http://127.0.0.1:8000 --port 8601
    dashboard --config dashboard.yaml                             # or AS_DASHBOARD__... variables

The command validates the settings, then becomes ``streamlit run`` on the dashboard's
script with the settings handed over, and with Streamlit told to open no browser, send no
usage statistics, watch no files and show no developer menu.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from as_config import AsConfigError
from as_dashboard._version import __version__
from as_dashboard.app import SETTINGS_ARG
from as_dashboard.settings import DashboardSettings, load_dashboard_settings

__all__ = ["ENTRY_SCRIPT", "main", "streamlit_command"]

#: The script Streamlit runs.
ENTRY_SCRIPT = Path(__file__).resolve().parent / "_entry.py"

#: Exit status of a usage error (bad option, invalid settings).
EXIT_USAGE = 2


def streamlit_command(settings: DashboardSettings) -> list[str]:
    """The ``python -m streamlit run`` command line that serves the dashboard.

    Headless (no browser opened), no usage statistics, no file watcher or run-on-save
    (an installed app does not change), no developer options in the page's menu.
    """
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(ENTRY_SCRIPT),
        "--server.headless=true",
        "--browser.gatherUsageStats=false",
        f"--server.address={settings.host}",
        f"--server.port={settings.port}",
        "--server.fileWatcherType=none",
        "--server.runOnSave=false",
        "--global.developmentMode=false",
        "--client.toolbarMode=viewer",
        "--theme.base=light",
        "--",
        SETTINGS_ARG,
        settings.model_dump_json(),
    ]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dashboard",
        description="The as-toolkit dashboard: benchmark results and comparisons, a model "
        "server's live metrics, training runs. Settings: --config FILE, AS_DASHBOARD__... "
        "variables, then these options (highest).",
    )
    parser.add_argument("--version", action="version", version=f"as-dashboard {__version__}")
    parser.add_argument("--config", type=Path, help="settings file (YAML, JSON or TOML)")
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to listen on (default 8501)")
    parser.add_argument(
        "--store",
        action="append",
        type=Path,
        dest="stores",
        help="an as-bench result store or export to open (repeatable)",
    )
    parser.add_argument("--server-url", help="an as-deploy server whose /metrics to show")
    parser.add_argument(
        "--training",
        action="append",
        type=Path,
        dest="training_dirs",
        help="a training run, or a folder of runs (repeatable)",
    )
    parser.add_argument("--log-level", help="console log level (default info)")
    parser.add_argument(
        "--print-command",
        action="store_true",
        help="print the streamlit command line instead of running it",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``dashboard`` command; returns its exit status when it does not exec."""
    args = _parser().parse_args(argv)
    overrides = {
        key: value
        for key, value in vars(args).items()
        if key not in ("config", "print_command") and value is not None
    }
    try:
        settings = load_dashboard_settings(args.config, overrides)
    except AsConfigError as exc:
        sys.stderr.write(f"dashboard: {exc}\n")
        return EXIT_USAGE
    command = streamlit_command(settings)
    if args.print_command:
        sys.stdout.write(" ".join(command) + "\n")
        return 0
    sys.stderr.write(f"dashboard: http://{settings.host}:{settings.port}\n")
    sys.stderr.flush()
    env = {**os.environ, "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"}
    os.execve(sys.executable, command, env)  # this process becomes the server
