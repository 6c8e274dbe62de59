"""Where the answers come from: a model repository in this process, or an as-deploy server.

Both speak in the manifest's terms (tensor names, dtypes, labels, preprocessing), so the
demo's pages do not know which one runs the model:

- :class:`LocalBackend` opens the repository with :class:`as_deploy.ModelRepository`
  (every file verified) and runs each version in the runtime its format needs through
  :func:`as_deploy.runtime.load_runner`, keeping the loaded versions;
- :class:`HttpBackend` uses the server's public API: ``GET /v1/models``,
  ``GET /v1/models/{name}?version=`` and ``POST /v1/models/{name}/predict?version=``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx
import numpy as np

from as_demo.errors import DemoError, ModelUnavailableError
from as_deploy import AsDeployError, Manifest, ModelRepository, TensorSpec
from as_deploy.runtime import Array, ModelRunner, load_runner, numpy_dtype

__all__ = ["Backend", "HttpBackend", "LocalBackend", "VersionInfo", "make_backend"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class VersionInfo:
    """One model version, as the demo needs to know it.

    Attributes:
        name: The model's name.
        version: The version.
        format: Its format (``onnx``, ``tflite``, ``coreml``).
        inputs: Its inputs, in the manifest's order.
        outputs: Its outputs.
        labels: Class labels in output order, for classifiers.
        preprocessing: How inputs are prepared (the manifest's record).
        source: Where it came from (the manifest's provenance), if recorded.
    """

    name: str
    version: str
    format: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    labels: tuple[str, ...] | None = None
    preprocessing: Mapping[str, Any] = field(default_factory=dict)
    source: str | None = None

    @property
    def title(self) -> str:
        """``name/version (format, source)``: how the page names it."""
        extra = self.format if not self.source else f"{self.format}, {self.source}"
        return f"{self.name}/{self.version} ({extra})"

    @classmethod
    def from_manifest(cls, manifest: Manifest) -> VersionInfo:
        """The record of a manifest."""
        return cls(
            name=manifest.name,
            version=manifest.version,
            format=manifest.format,
            inputs=tuple(manifest.inputs),
            outputs=tuple(manifest.outputs),
            labels=tuple(manifest.labels) if manifest.labels else None,
            preprocessing=dict(manifest.preprocessing),
            source=_source(manifest.provenance.model_dump(mode="json")),
        )


class Backend(Protocol):
    """What the demo asks of a place that runs models."""

    @property
    def where(self) -> str:
        """Where the answers come from, in words (shown on the page)."""
        ...

    def models(self) -> dict[str, list[str]]:
        """Every model's versions, oldest first."""
        ...

    def describe(self, name: str, version: str) -> VersionInfo:
        """One version's inputs, outputs, labels and preprocessing."""
        ...

    def run(self, name: str, version: str, inputs: Mapping[str, Array]) -> dict[str, Array]:
        """Run one request; the inputs already have the manifest's dtypes and shapes."""
        ...

    def close(self) -> None:
        """Release what the backend holds (loaded models, connections)."""
        ...


class LocalBackend:
    """Runs the models of a repository in this process, each version loaded once."""

    def __init__(self, root: Path) -> None:
        """Open the repository at ``root`` (it must be a folder)."""
        if not root.is_dir():
            raise DemoError(
                f"the model repository {root} does not exist or is not a folder "
                "(it holds <name>/<version>/manifest.json)"
            )
        self._repo = ModelRepository(root)
        self._runners: dict[tuple[str, str], tuple[VersionInfo, ModelRunner]] = {}
        self._lock = threading.Lock()

    @property
    def where(self) -> str:
        """``in this process, from the repository <root>``."""
        return f"in this process, from the repository {self._repo.root}"

    def models(self) -> dict[str, list[str]]:
        """Every model's versions, oldest first."""
        try:
            found: dict[str, list[str]] = {}
            for name, version in self._repo.list_models():
                found.setdefault(name, []).append(version)
            return {name: self._repo.versions(name) for name in found}
        except AsDeployError as exc:
            raise DemoError(f"cannot list the models of {self._repo.root}: {exc}") from exc

    def _loaded(self, name: str, version: str) -> tuple[VersionInfo, ModelRunner]:
        key = (name, version)
        with self._lock:
            if key not in self._runners:
                try:
                    model = self._repo.load(name, version)
                    runner = load_runner(model)
                except AsDeployError as exc:
                    raise ModelUnavailableError(f"{name}/{version} cannot run: {exc}") from exc
                self._runners[key] = (VersionInfo.from_manifest(model.manifest), runner)
                logger.info("loaded %s/%s from %s", name, version, self._repo.root)
            return self._runners[key]

    def describe(self, name: str, version: str) -> VersionInfo:
        """One version's record (loading it, so that a version that cannot run says so)."""
        return self._loaded(name, version)[0]

    def run(self, name: str, version: str, inputs: Mapping[str, Array]) -> dict[str, Array]:
        """Run one request in the version's runtime."""
        info, runner = self._loaded(name, version)
        try:
            return runner.run(inputs)
        except AsDeployError as exc:
            raise DemoError(f"{info.name}/{info.version} failed to run: {exc}") from exc

    def close(self) -> None:
        """Close every loaded runner."""
        with self._lock:
            for _, runner in self._runners.values():
                runner.close()
            self._runners.clear()


class HttpBackend:
    """Asks an as-deploy server, through its public ``/v1`` API."""

    def __init__(self, url: str, *, timeout_s: float = 30.0) -> None:
        """Talk to the server at ``url`` (``http://host:port``)."""
        self.url = url.rstrip("/")
        self._client = httpx.Client(base_url=self.url, timeout=timeout_s)
        self._described: dict[tuple[str, str], VersionInfo] = {}

    @property
    def where(self) -> str:
        """``from the model server at <url>``."""
        return f"from the model server at {self.url}"

    def _get(self, path: str, params: dict[str, str] | None = None) -> Any:
        return self._answer(lambda: self._client.get(path, params=params), f"GET {path}")

    def _answer(self, send: Any, what: str) -> Any:
        try:
            response = send()
        except httpx.HTTPError as exc:
            raise DemoError(
                f"the model server at {self.url} did not answer {what}: {exc!s} "
                f"({type(exc).__name__}); is it running?"
            ) from exc
        if response.status_code != 200:
            raise _server_error(response, what)
        try:
            return response.json()
        except ValueError as exc:
            raise DemoError(f"the model server at {self.url} answered {what} with no JSON") from exc

    def models(self) -> dict[str, list[str]]:
        """Every model's versions, oldest first (``GET /v1/models``)."""
        body = self._get("/v1/models")
        try:
            return {
                model["name"]: [entry["version"] for entry in model["versions"]]
                for model in body["models"]
            }
        except (KeyError, TypeError) as exc:
            raise DemoError(f"GET {self.url}/v1/models answered an unexpected body") from exc

    def describe(self, name: str, version: str) -> VersionInfo:
        """One version's record (``GET /v1/models/{name}?version=``), asked once."""
        key = (name, version)
        if key not in self._described:
            body = self._get(f"/v1/models/{name}", {"version": version})
            try:
                provenance = body.get("provenance") or {}
                self._described[key] = VersionInfo(
                    name=body["name"],
                    version=body["version"],
                    format=body["format"],
                    inputs=tuple(TensorSpec.model_validate(t) for t in body["inputs"]),
                    outputs=tuple(TensorSpec.model_validate(t) for t in body["outputs"]),
                    labels=tuple(body["labels"]) if body.get("labels") else None,
                    preprocessing=dict(body.get("preprocessing") or {}),
                    source=_source(provenance),
                )
            except (KeyError, TypeError, ValueError) as exc:
                raise DemoError(
                    f"GET {self.url}/v1/models/{name} answered an unexpected body: {exc}"
                ) from exc
        return self._described[key]

    def run(self, name: str, version: str, inputs: Mapping[str, Array]) -> dict[str, Array]:
        """One ``POST /v1/models/{name}/predict?version=``; outputs in the manifest's dtypes."""
        info = self.describe(name, version)
        path = f"/v1/models/{name}/predict"
        payload = {"inputs": {key: value.tolist() for key, value in inputs.items()}}
        body = self._answer(
            lambda: self._client.post(path, params={"version": version}, json=payload),
            f"POST {path}",
        )
        dtypes = {spec.name: spec.dtype for spec in info.outputs}
        try:
            return {
                key: np.asarray(value, dtype=numpy_dtype(dtypes.get(key, "float32")))
                for key, value in body["outputs"].items()
            }
        except (KeyError, TypeError, ValueError, AsDeployError) as exc:
            raise DemoError(f"POST {self.url}{path} answered unexpected outputs: {exc}") from exc

    def close(self) -> None:
        """Close the connections."""
        self._client.close()


def _source(provenance: Mapping[str, Any]) -> str | None:
    """Where a version came from, in a few words: as-optimize's candidate, or the source."""
    optimization = provenance.get("optimization")
    if isinstance(optimization, Mapping):
        made = optimization.get("candidate") or optimization.get("technique")
        if made:
            return f"as-optimize {made}"
    source = provenance.get("source")
    return str(source) if source else None


def _server_error(response: httpx.Response, what: str) -> DemoError:
    try:
        error = response.json()["error"]
        message = error["message"] if isinstance(error, dict) else str(error)
    except (ValueError, KeyError, TypeError):
        message = response.text[:200] or response.reason_phrase
    where = f"{response.request.url}"
    if response.status_code in (404, 409):
        return ModelUnavailableError(f"{what} at {where}: {response.status_code} {message}")
    return DemoError(f"{what} at {where}: {response.status_code} {message}")


def make_backend(server_url: str | None, repo: Path | None, *, timeout_s: float) -> Backend:
    """The backend the settings ask for: the server when there is a URL, else the repository.

    ``repo`` ``None`` is the default model that as-deploy ships.
    """
    if server_url:
        return HttpBackend(server_url, timeout_s=timeout_s)
    if repo is None:
        from as_deploy.server import default_repository

        repo = default_repository()
    return LocalBackend(repo)
