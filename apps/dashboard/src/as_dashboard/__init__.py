"""as-dashboard: a Streamlit dashboard of as-toolkit (placeholder while it is written)."""

from as_dashboard._version import __version__

__all__ = ["__version__"]
