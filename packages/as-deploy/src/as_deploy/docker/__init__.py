"""Dockerfiles that serve a model repository: :func:`render_dockerfile`, :func:`write_dockerfile`.

Split by job: ``_context`` (what an image is made of), ``_verify`` (checking the
repository and planning the build context), ``_wheels`` (finding, building and copying
wheels), ``_render`` (the text) and ``_write`` (the files). (It was one module,
``as_deploy.dockerfile``; its public names are all here.)

The image runs ``as-deploy serve --repo /models --host 0.0.0.0 --port N`` as a non-root
user, with a ``HEALTHCHECK`` on ``/health``. It is built in stages:

``uv``
    the uv binary, from its official image (copied, never run in the final image);
``builder``
    a virtual environment in ``/opt/venv`` holding as-deploy and what it needs;
``runtime``
    the slim Python base, the environment, the repository in ``/models`` (owned by root,
    read-only to the server's user) and nothing else: no compiler, no uv, no curl.

The build context is the Dockerfile's folder, and the repository must lie inside it; a
``.dockerignore`` there lets only the repository (and the wheels) reach the builder, and
keeps out hidden folders (unfinished repository writes) and Core ML versions.

Where as-deploy comes from:

* by default ``as-deploy==<this version>`` from the package index;
* with ``wheels``, from local wheels of as-deploy and its workspace siblings (as-core,
  as-logging, as-config; the server needs no as-bench), copied into the build context
  and installed by direct file reference, so that no index can stand in for them; their
  third-party dependencies (onnxruntime, FastAPI, ...) still come from the index.
  :func:`build_wheels` makes them with ``uv build`` in the workspace.

Core ML needs macOS: a Linux container, also Docker on Apple Silicon, has no Core ML, MPS
or Metal. Core ML versions are left out of the image with a warning; a repository that
holds nothing else is refused. TFLite versions get ``ai-edge-litert``, the runtime only:
as-deploy's ``tflite`` extra also pulls torch and the converter, which serving never needs.

Server settings are never written into the Dockerfile (except the repository, host and
port of the command): the server reads them from ``AS_DEPLOY__...`` environment variables,
which ``docker run -e`` sets.
"""

from __future__ import annotations

from as_deploy.docker._context import (
    DEFAULT_PORT,
    DEFAULT_PYTHON,
    DEFAULT_TAG,
    GENERATED_MARKER,
    WORKSPACE_PACKAGES,
    DockerContext,
    DockerOptions,
    ShippedVersion,
)
from as_deploy.docker._render import render_dockerfile
from as_deploy.docker._verify import check_dockerfile_target, prepare_docker_context
from as_deploy.docker._wheels import build_wheels
from as_deploy.docker._write import write_docker_context, write_dockerfile

__all__ = [
    "DEFAULT_PORT",
    "DEFAULT_PYTHON",
    "DEFAULT_TAG",
    "GENERATED_MARKER",
    "WORKSPACE_PACKAGES",
    "DockerContext",
    "DockerOptions",
    "ShippedVersion",
    "build_wheels",
    "check_dockerfile_target",
    "prepare_docker_context",
    "render_dockerfile",
    "write_docker_context",
    "write_dockerfile",
]
