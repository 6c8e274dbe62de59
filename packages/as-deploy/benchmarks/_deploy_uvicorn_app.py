"""as-deploy's app on plain uvicorn, to measure what ``as-deploy serve``'s protocol costs.

Started by ``serve_bench.py`` as ``python _deploy_uvicorn_app.py PORT REPO``. The same
app as ``as-deploy serve`` (``create_app``, settings from ``AS_DEPLOY__*``, the startup
objects frozen out of the garbage collector), served by ``uvicorn.run`` with its
defaults (httptools and uvloop) instead of ``as-deploy serve``'s protocol subclass with
its header deadline and limit, JSON errors and draining. Only a measurement: it has none
of those.
"""

from __future__ import annotations

import gc
import sys
from pathlib import Path

import uvicorn

from as_deploy.server import create_app


def main() -> None:
    port, repo = int(sys.argv[1]), Path(sys.argv[2])
    app = create_app(repo=repo)
    gc.collect()
    gc.freeze()
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
