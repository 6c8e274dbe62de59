"""as-deploy exports models with parity checks and serves them.

- :func:`export_to_repository` / ``as-deploy export``: a PyTorch model (an as-bench
  workload or ``pkg.module:factory``) to ONNX, Core ML or TFLite, checked against eager
  PyTorch in the runtime that will serve it, written to a :class:`ModelRepository`.
- :func:`create_app` / ``as-deploy serve``: the FastAPI model server (ONNX Runtime by
  default, dynamic batching, limits, Prometheus metrics), configured by
  :class:`ServerSettings`.
- :func:`add_onnx_model`: an ONNX file another tool made from a source (as-optimize's
  compressed winner) stored as a version, described as an export of that source, its
  parity with PyTorch checked, how it was made in ``provenance.optimization``.
- :class:`ExportOptions`: every option of an export in one frozen, checked object.
- :func:`write_dockerfile` / ``as-deploy dockerfile`` and ``as_deploy.pack.pack`` /
  ``as-deploy pack``: a container for a repository; export to Dockerfile in one step.
  (``pack`` is not re-exported here: the name would clash with the ``as_deploy.pack``
  module once that is imported.)

Importing the package is cheap: the exporter, the server and their libraries load on
first use of the names that need them (:func:`as_core.lazy.lazy_exports`). The exporter
needs an extra (``uv add "as-deploy[export]"``); the server is the core install.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from as_core.lazy import lazy_exports
from as_deploy._version import __version__
from as_deploy.exceptions import (
    AsDeployError,
    ExportError,
    IntegrityError,
    InvalidNameError,
    ManifestError,
    MissingExtraError,
    ModelNotFoundError,
    ParityError,
    RepositoryError,
    UnsafePathError,
    UsageError,
    VersionExistsError,
)
from as_deploy.manifest import (
    NAME_PATTERN,
    SCHEMA_VERSION,
    FileEntry,
    Manifest,
    ParityReport,
    Provenance,
    TensorSpec,
    check_name,
    parse_manifest,
)
from as_deploy.repository import LoadedModel, ModelRepository, sha256_file

if TYPE_CHECKING:
    from as_deploy.docker import render_dockerfile, write_dockerfile
    from as_deploy.export import (
        ExportOptions,
        ExportResult,
        add_onnx_model,
        export_model,
        export_to_repository,
    )
    from as_deploy.pack import PackResult
    from as_deploy.server import create_app
    from as_deploy.settings import ServerSettings

# Public names that live in modules with heavier imports, loaded on first access.
_LAZY: dict[str, str] = {
    "ExportOptions": "as_deploy.export",
    "ExportResult": "as_deploy.export",
    "export_model": "as_deploy.export",
    "export_to_repository": "as_deploy.export",
    "add_onnx_model": "as_deploy.export",
    "PackResult": "as_deploy.pack",
    "render_dockerfile": "as_deploy.docker",
    "write_dockerfile": "as_deploy.docker",
    "create_app": "as_deploy.server",
    "ServerSettings": "as_deploy.settings",
}

__all__ = [
    "NAME_PATTERN",
    "SCHEMA_VERSION",
    "AsDeployError",
    "ExportError",
    "ExportOptions",
    "ExportResult",
    "FileEntry",
    "IntegrityError",
    "InvalidNameError",
    "LoadedModel",
    "Manifest",
    "ManifestError",
    "MissingExtraError",
    "ModelNotFoundError",
    "ModelRepository",
    "PackResult",
    "ParityError",
    "ParityReport",
    "Provenance",
    "RepositoryError",
    "ServerSettings",
    "TensorSpec",
    "UnsafePathError",
    "UsageError",
    "VersionExistsError",
    "__version__",
    "add_onnx_model",
    "check_name",
    "create_app",
    "export_model",
    "export_to_repository",
    "parse_manifest",
    "render_dockerfile",
    "sha256_file",
    "write_dockerfile",
]


__getattr__, _dir = lazy_exports(__name__, _LAZY, __all__)


def __dir__() -> list[str]:
    """The public names only (``__all__``), not the helpers this module imports."""
    return sorted(__all__)
