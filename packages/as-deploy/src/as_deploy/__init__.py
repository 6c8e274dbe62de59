"""as-deploy exports models with parity checks and serves them.

This release holds the model repository (:class:`ModelRepository`) and its manifest
schema (:class:`Manifest`); export and the server arrive in the releases that follow.
"""

from as_deploy._version import __version__
from as_deploy.exceptions import (
    AsDeployError,
    IntegrityError,
    InvalidNameError,
    ManifestError,
    ModelNotFoundError,
    RepositoryError,
    UnsafePathError,
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

__all__ = [
    "NAME_PATTERN",
    "SCHEMA_VERSION",
    "AsDeployError",
    "FileEntry",
    "IntegrityError",
    "InvalidNameError",
    "LoadedModel",
    "Manifest",
    "ManifestError",
    "ModelNotFoundError",
    "ModelRepository",
    "ParityReport",
    "Provenance",
    "RepositoryError",
    "TensorSpec",
    "UnsafePathError",
    "VersionExistsError",
    "__version__",
    "check_name",
    "parse_manifest",
    "sha256_file",
]
