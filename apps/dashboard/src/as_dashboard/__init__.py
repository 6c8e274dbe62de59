"""as-dashboard: the as-toolkit dashboard (Streamlit), started by the ``dashboard`` command.

An application, not a library: :mod:`as_dashboard.results` (as-bench stores, comparisons
and figures), :mod:`as_dashboard.live` (an as-deploy server's ``/metrics``),
:mod:`as_dashboard.training` (the training monitor's runs) and :mod:`as_dashboard.settings`
hold what the pages in :mod:`as_dashboard.app` show; :mod:`as_dashboard.cli` starts them.
"""

from as_dashboard._version import __version__

__all__ = ["__version__"]
