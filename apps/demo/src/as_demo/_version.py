"""The version of as-demo: the one place it is set (hatch reads it for the build)."""

__version__ = "0.1.0"
