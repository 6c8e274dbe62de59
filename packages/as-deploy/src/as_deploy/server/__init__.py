"""The model server: a FastAPI app over a model repository, with dynamic batching.

:func:`create_app` builds the app; ``as-deploy serve`` runs it under uvicorn. Routes:
``GET /health``, ``GET /ready``, ``GET /metrics``, ``GET /v1/models``,
``GET /v1/models/{name}``, ``POST /v1/models/{name}/predict`` and ``/openapi.json``.
This subpackage imports FastAPI and numpy; ``import as_deploy`` does not import it.
"""

from __future__ import annotations

from as_deploy.exceptions import ServerError
from as_deploy.server._state import ServerState
from as_deploy.server.app import create_app, default_repository

__all__ = ["ServerError", "ServerState", "create_app", "default_repository"]
