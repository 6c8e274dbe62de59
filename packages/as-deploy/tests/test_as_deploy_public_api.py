"""The public surface of as_deploy: exactly what ``__all__`` promises, nothing pretending."""

import importlib.metadata
import re
import types

import as_deploy


def test_all_is_exact_and_every_name_resolves() -> None:
    # Submodules (as_deploy.export, .server, ...) appear as attributes once imported; the
    # public names are the functions, classes and constants.
    public = {
        name
        for name in dir(as_deploy)
        if not name.startswith("_") and not isinstance(getattr(as_deploy, name), types.ModuleType)
    }
    assert set(as_deploy.__all__) == public | {"__version__"}
    for name in as_deploy.__all__:
        assert getattr(as_deploy, name) is not None


def test_version_matches_installed_metadata() -> None:
    assert re.fullmatch(r"\d+\.\d+\.\d+(?:[-.]?(?:a|b|rc|dev)\d+)?", as_deploy.__version__)
    assert importlib.metadata.version("as-deploy") == as_deploy.__version__


def test_base_error_is_an_exception() -> None:
    assert issubclass(as_deploy.AsDeployError, Exception)


def test_error_tree_subclasses_the_expected_builtins() -> None:
    assert issubclass(as_deploy.RepositoryError, OSError)
    assert issubclass(as_deploy.ModelNotFoundError, FileNotFoundError)
    assert issubclass(as_deploy.VersionExistsError, FileExistsError)
    assert issubclass(as_deploy.UnsafePathError, PermissionError)
    assert issubclass(as_deploy.IntegrityError, as_deploy.RepositoryError)
    assert issubclass(as_deploy.InvalidNameError, ValueError)
    assert issubclass(as_deploy.ManifestError, ValueError)
    for name in as_deploy.__all__:
        obj = getattr(as_deploy, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, as_deploy.AsDeployError)
