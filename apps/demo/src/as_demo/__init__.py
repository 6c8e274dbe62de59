"""as-demo: try as-toolkit's models in a browser.

A Gradio app (``uv run --package as-demo demo``): draw or upload a digit and get its label
with the class probabilities, type two sentences and get their MiniLM similarity, choose
the model version and watch each request's latency with a rolling p50/p99 chart, next to
what the hardware is. Answers come from an as-deploy server over HTTP when
``AS_DEMO__SERVER_URL`` is set, otherwise from a model repository in this process
(by default the digits model that as-deploy ships).
"""

from as_demo._version import __version__

__all__ = ["__version__"]
