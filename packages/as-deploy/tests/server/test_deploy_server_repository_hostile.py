"""A hostile or broken model repository: each bad model is its own 409, the rest serve.

FIFOs where files should be, manifests that break parsers, external weights the manifest
does not list, loads that hang; and requests that are cheap to send but were expensive to
answer (hashing on every metadata request, loading on every predict, listing every
version folder on the event loop): the work they cause is counted, not timed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import threading
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import as_deploy.server._models as models_module
from as_deploy.repository import ModelRepository
from as_deploy.runtime import ModelRunner, load_runner
from as_deploy.server import create_app
from as_deploy.settings import BatchingSettings, ServerSettings

DIGITS_BODY = {"inputs": {"input": [[[[0.5] * 8] * 8]]}}
INTS_BODY = {"inputs": {"ids": [[1, 2, 3, 4]]}}
# A generous bound on scenarios that must never hang: a hang fails the test, not the run.
HANG_GUARD_S = 120


def _bounded(scenario: Callable[[], Coroutine[Any, Any, None]], fifos: list[Path]) -> None:
    """Run ``scenario`` in a thread of its own; fail (and unblock it) if it never finishes.

    A server that opens a FIFO for reading blocks until a writer comes: on timeout, every
    FIFO is opened for writing, which lets such a reader go, so the run can end.
    """
    failure: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(scenario())
        except BaseException as exc:  # handed to the test's thread
            failure.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(HANG_GUARD_S)
    if thread.is_alive():
        for fifo in fifos:
            with contextlib.suppress(OSError):
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        thread.join(30)
        raise AssertionError(f"the server hung (blocked on a FIFO?) for {HANG_GUARD_S} s")
    if failure:
        raise failure[0]


def _error(response: Any, status: int, code: str, *fragments: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code, error
    for fragment in fragments:
        assert fragment in error["message"], error["message"]
    return error


def _add_version(repo: Path, name: str, source: str, version: str) -> Path:
    """Copy ``name``/``source`` to ``name``/``version`` (the manifest says ``version``)."""
    target = repo / name / version
    shutil.copytree(repo / name / source, target)
    manifest = json.loads((target / "manifest.json").read_text())
    manifest["version"] = version
    (target / "manifest.json").write_text(json.dumps(manifest))
    return target


def _bad_manifest(repo: Path, name: str, text: str) -> Path:
    """A model ``name``/``1``: int-sum's files, and ``text`` as its manifest."""
    folder = repo / name / "1"
    shutil.copytree(repo / "int-sum" / "1", folder)
    (folder / "manifest.json").write_text(text)
    return folder / "manifest.json"


def _manifest_with(repo: Path, number: str) -> str:
    """The int-sum manifest as text with ``number`` as a preprocessing value."""
    manifest = json.loads((repo / "int-sum" / "1" / "manifest.json").read_text())
    manifest["preprocessing"] = {"scale": 0}
    return json.dumps(manifest).replace('"scale": 0', f'"scale": {number}')


# -- FIFOs --------------------------------------------------------------------------------


def test_fifo_manifest_or_model_file_is_a_409_and_never_blocks_the_server(
    repo: Path, h: Any
) -> None:
    # digits-cnn/2: its manifest is a FIFO. piped/1: int-sum whose model file is a FIFO.
    version = _add_version(repo, "digits-cnn", "1", "2")
    (version / "manifest.json").unlink()
    os.mkfifo(version / "manifest.json")
    h.copy_model(repo, "int-sum", repo, new_name="piped")
    (repo / "piped" / "1" / "model.onnx").unlink()
    os.mkfifo(repo / "piped" / "1" / "model.onnx")
    fifos = [version / "manifest.json", repo / "piped" / "1" / "model.onnx"]

    async def scenario() -> None:
        app = create_app(ServerSettings(preload=[]), repo=repo)
        async with h.running(app) as client:
            manifest = asyncio.create_task(
                client.post(
                    "/v1/models/digits-cnn/predict", params={"version": "2"}, json=DIGITS_BODY
                )
            )
            model = asyncio.create_task(client.post("/v1/models/piped/predict", json=INTS_BODY))
            # The event loop is free while those are answered.
            assert (await client.get("/health")).status_code == 200
            _error(
                await manifest,
                409,
                "unsafe_path",
                "model digits-cnn/2 is refused",
                "manifest.json is a FIFO (named pipe), not a regular file",
            )
            _error(
                await model,
                409,
                "unsafe_path",
                "model piped",
                "model.onnx",
                "is a FIFO (named pipe), not a regular file",
            )
            _error(await client.get("/v1/models/piped"), 409, "unsafe_path", "model.onnx", "FIFO")
            _error(
                await client.get("/v1/models/digits-cnn", params={"version": "2"}),
                409,
                "unsafe_path",
                "manifest.json",
            )
            # The other models serve; the FIFO version is not listed as the latest.
            ok = await client.post("/v1/models/digits-cnn/predict", json=DIGITS_BODY)
            assert ok.status_code == 200 and ok.json()["version"] == "1", ok.text
        # ... and the server stopped (the lifespan's shutdown ran to its end).

    _bounded(scenario, fifos)


# -- manifests that break parsers ---------------------------------------------------------


@pytest.fixture
def broken_repo(repo: Path) -> Path:
    """``repo`` plus three models whose manifests break a naive parser."""
    _bad_manifest(repo, "deep", "[" * 100_000 + "]" * 100_000)
    _bad_manifest(repo, "bigint", _manifest_with(repo, "1" * 5000).replace("int-sum", "bigint"))
    _bad_manifest(repo, "nan", _manifest_with(repo, "NaN").replace("int-sum", "nan"))
    return repo


BROKEN = [
    pytest.param("deep", "JSON nested deeper than 64 levels", id="nested-100k-deep"),
    pytest.param("bigint", "an integer of 5000 digits", id="5000-digit-integer"),
    pytest.param("nan", "NaN is not a JSON number", id="nan"),
]


@pytest.mark.parametrize(("name", "why"), BROKEN)
def test_manifest_that_breaks_a_parser_is_that_models_409(
    broken_repo: Path, h: Any, name: str, why: str
) -> None:
    async def scenario() -> None:
        app = create_app(ServerSettings(preload=[]), repo=broken_repo)
        async with h.running(app) as client:
            for response in (
                await client.post(f"/v1/models/{name}/predict", json=INTS_BODY),
                await client.get(f"/v1/models/{name}"),
            ):
                _error(
                    response,
                    409,
                    "model_unavailable",
                    f"model {name}/1 failed to load",
                    f"<repo>/{name}/1/manifest.json",
                    why,
                )
            ok = await client.post("/v1/models/int-sum/predict", json=INTS_BODY)
            assert ok.status_code == 200, ok.text

    asyncio.run(scenario())


async def _settled(client: Any) -> dict[str, Any]:
    """``/ready`` once it has left "loading" (bounded)."""
    deadline = asyncio.get_running_loop().time() + HANG_GUARD_S
    while True:
        body: dict[str, Any] = (await client.get("/ready")).json()
        if body["status"] != "loading":
            return body
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"/ready never left 'loading': {body}")
        await asyncio.sleep(0.02)


def test_default_preload_skips_broken_models_and_is_ready_with_the_reasons(
    broken_repo: Path, h: Any
) -> None:
    async def scenario() -> None:
        settings = ServerSettings(max_loaded_models=8)  # preload: every model
        async with h.running(create_app(settings, repo=broken_repo), ready=False) as client:
            body = await _settled(client)
            assert body["status"] == "ready" and body["ready"] is True, body
            assert body["loaded"] == ["digits-cnn/1", "int-sum/1", "slow-mlp/1"]
            assert set(body["errors"]) == {"bigint", "deep", "nan"}
            assert "JSON nested deeper than 64 levels" in body["errors"]["deep"]

    asyncio.run(scenario())


def test_explicit_preload_of_a_broken_model_fails_readiness_with_the_reason(
    broken_repo: Path, h: Any
) -> None:
    async def scenario() -> None:
        settings = ServerSettings(preload=["deep", "int-sum"])
        async with h.running(create_app(settings, repo=broken_repo), ready=False) as client:
            body = await _settled(client)
            assert body["status"] == "failed" and body["ready"] is False, body
            assert "manifest.json" in body["errors"]["deep"]
            assert body["loaded"] == ["int-sum/1"]

    asyncio.run(scenario())


# -- ONNX external data -------------------------------------------------------------------


def _external_model(folder: Path, location: str = "weights.bin", subgraph: bool = False) -> None:
    """``y = x @ w`` with ``w`` in the file ``location``; in an ``If`` branch if ``subgraph``."""
    from onnx import TensorProto, helper, numpy_helper

    folder.mkdir(parents=True, exist_ok=True)
    w = np.arange(16, dtype=np.float32).reshape(4, 4) / 16
    weight = numpy_helper.from_array(w, "w")
    weight.data_location = TensorProto.EXTERNAL
    weight.ClearField("raw_data")
    entry = weight.external_data.add()
    entry.key, entry.value = "location", location
    for key, value in (("offset", "0"), ("length", str(w.nbytes))):
        extra = weight.external_data.add()
        extra.key, extra.value = key, value
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])
    if subgraph:
        branch = helper.make_graph(
            [helper.make_node("MatMul", ["x", "w"], ["y_then"])],
            "then",
            [],
            [helper.make_tensor_value_info("y_then", TensorProto.FLOAT, ["batch", 4])],
            [weight],
        )
        other = helper.make_graph(
            [helper.make_node("Identity", ["x"], ["y_else"])],
            "else",
            [],
            [helper.make_tensor_value_info("y_else", TensorProto.FLOAT, ["batch", 4])],
        )
        nodes = [
            helper.make_node("Constant", [], ["c"], value_int=1),
            helper.make_node("Cast", ["c"], ["cond"], to=TensorProto.BOOL),
            helper.make_node("If", ["cond"], ["y"], then_branch=branch, else_branch=other),
        ]
        graph = helper.make_graph(nodes, "g", [x], [y])
    else:
        graph = helper.make_graph(
            [helper.make_node("MatMul", ["x", "w"], ["y"])], "g", [x], [y], [weight]
        )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    (folder / "model.onnx").write_bytes(model.SerializeToString())
    target = (folder / location) if not location.startswith("/") else Path(location)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(w.tobytes())


def _add_external(
    repo: Path, h: Any, name: str, listed: list[str], location: str = "weights.bin", **kw: Any
) -> Path:
    """Model ``name``/1: an external-data ONNX model whose manifest lists ``listed``."""
    from as_deploy.manifest import TensorSpec

    scratch = repo.parent / f"build-{name}"
    _external_model(scratch, location, **kw)
    files = {path: scratch / path for path in ["model.onnx", *listed]}
    manifest = h.make_manifest(
        name,
        "1",
        files,
        [TensorSpec(name="x", dtype="float32", shape=[None, 4])],
        [TensorSpec(name="y", dtype="float32", shape=[None, 4])],
        model_file="model.onnx",
    )
    folder = ModelRepository(repo).add(manifest, files)
    # The weights lie beside the model whether the manifest lists them or not.
    for extra in scratch.rglob("*"):
        if extra.is_file() and not (folder / extra.relative_to(scratch)).exists():
            (folder / extra.relative_to(scratch)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(extra, folder / extra.relative_to(scratch))
    return folder


EYE_BODY = {"inputs": {"x": [[1.0, 0.0, 0.0, 0.0]]}}


def test_external_data_the_manifest_does_not_list_is_refused(repo: Path, h: Any) -> None:
    _add_external(repo, h, "unlisted", [])
    _add_external(repo, h, "listed", ["weights.bin"])
    _add_external(repo, h, "branch", [], location="sub.bin", subgraph=True)
    outside = _add_external(repo, h, "escapes", [], location="../outside.bin")
    tampered = _add_external(repo, h, "tampered", ["weights.bin"])
    data = bytearray((tampered / "weights.bin").read_bytes())
    data[0] ^= 0xFF
    (tampered / "weights.bin").write_bytes(bytes(data))
    shutil.copy(repo.parent / "outside.bin", outside.parent / "outside.bin")

    async def scenario() -> None:
        async with h.running(create_app(ServerSettings(preload=[]), repo=repo)) as client:

            async def predict(name: str) -> Any:
                return await client.post(f"/v1/models/{name}/predict", json=EYE_BODY)

            _error(
                await predict("unlisted"),
                409,
                "integrity_check_failed",
                "model unlisted/1 failed its integrity check",
                "reads external data from 'weights.bin'",
                "the manifest does not list",
            )
            _error(
                await predict("branch"),
                409,
                "integrity_check_failed",
                "reads external data from 'sub.bin'",
            )
            _error(
                await predict("escapes"),
                409,
                "unsafe_path",
                "'../outside.bin'",
                "outside the version folder",
            )
            _error(
                await predict("tampered"), 409, "integrity_check_failed", "weights.bin", "sha256"
            )
            # The metadata says the same once a load was refused.
            _error(await client.get("/v1/models/unlisted"), 409, "integrity_check_failed")
            ok = await predict("listed")
            assert ok.status_code == 200, ok.text
            expected = (np.arange(16, dtype=np.float32).reshape(4, 4) / 16)[0]
            np.testing.assert_allclose(ok.json()["outputs"]["y"][0], expected)

    asyncio.run(scenario())


# -- work that cheap requests cause --------------------------------------------------------


def test_metadata_requests_hash_each_version_once(repo: Path, h: Any) -> None:
    # digits-cnn/2: the same files, a model file tampered after its manifest was written.
    tampered = _add_version(repo, "digits-cnn", "1", "2")
    model = tampered / "model.onnx"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    files = len(json.loads((tampered / "manifest.json").read_text())["files"])

    async def scenario() -> None:
        app = create_app(ServerSettings(preload=[]), repo=repo)
        repository: ModelRepository = app.state.server.repository
        async with h.running(app) as client:
            for _ in range(10):
                info = await client.get("/v1/models/digits-cnn", params={"version": "1"})
                assert info.status_code == 200, info.text
                assert info.json()["state"] == "unloaded" and info.json()["loaded"] is False
            assert repository.files_hashed == files
            for _ in range(10):
                _error(
                    await client.get("/v1/models/digits-cnn", params={"version": "2"}),
                    409,
                    "integrity_check_failed",
                )
            assert repository.files_hashed == 2 * files
            # A predict loads the verified version without hashing it again.
            ok = await client.post(
                "/v1/models/digits-cnn/predict", params={"version": "1"}, json=DIGITS_BODY
            )
            assert ok.status_code == 200
            assert repository.files_hashed == 2 * files
            # A file that changes is verified again.
            model.write_bytes((repo / "digits-cnn" / "1" / "model.onnx").read_bytes())
            info = await client.get("/v1/models/digits-cnn", params={"version": "2"})
            assert info.status_code == 200, info.text
            assert repository.files_hashed == 3 * files

    asyncio.run(scenario())


def test_cycling_versions_does_not_reload_on_every_predict(repo: Path, h: Any) -> None:
    for version in ("2", "3", "4"):
        _add_version(repo, "int-sum", "1", version)
    settings = ServerSettings(
        preload=[], max_loaded_models=2, batching=BatchingSettings(max_wait_ms=0)
    )

    async def scenario() -> None:
        app = create_app(settings, repo=repo)
        async with h.running(app) as client:
            statuses: dict[str, list[int]] = {}
            for _ in range(3):
                for version in ("1", "2", "3", "4"):
                    response = await client.post(
                        "/v1/models/int-sum/predict", params={"version": version}, json=INTS_BODY
                    )
                    statuses.setdefault(version, []).append(response.status_code)
                    if response.status_code == 503:
                        error = _error(
                            response,
                            503,
                            "no_model_slot",
                            "min_residency_s=10",
                            "max_loaded_models=2",
                        )
                        assert error["detail"]["max_loaded_models"] == 2
                        assert int(response.headers["Retry-After"]) >= 1
            assert statuses == {"1": [200] * 3, "2": [200] * 3, "3": [503] * 3, "4": [503] * 3}
            text = (await client.get("/metrics")).text
            assert h.metric_value(text, "as_deploy_model_loads_total", model="int-sum") == 2
            # Once the loaded versions have stayed min_residency_s, the LRU one makes room.
            manager = app.state.server.models
            for key in manager.loaded():
                entry = manager.entry(key)
                assert entry is not None
                entry.loaded_at -= settings.min_residency_s
            ok = await client.post(
                "/v1/models/int-sum/predict", params={"version": "3"}, json=INTS_BODY
            )
            assert ok.status_code == 200, ok.text
            assert manager.loaded() == [("int-sum", "2"), ("int-sum", "3")]
            text = (await client.get("/metrics")).text
            assert h.metric_value(text, "as_deploy_model_loads_total", model="int-sum") == 3

    asyncio.run(scenario())


def test_predicts_do_not_list_version_folders_on_the_event_loop(
    repo: Path, h: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    for version in range(2, 40):
        _add_version(repo, "int-sum", "1", str(version))

    async def scenario() -> None:
        app = create_app(ServerSettings(preload=["int-sum:1"]), repo=repo)
        async with h.running(app) as client:
            repository: ModelRepository = app.state.server.repository
            app.state.server.models.listing_ttl_s = 3600.0
            loop_thread = threading.current_thread()
            listed_on: list[threading.Thread] = []
            original = repository.versions

            def versions(name: str) -> list[str]:
                listed_on.append(threading.current_thread())
                return original(name)

            monkeypatch.setattr(repository, "versions", versions)
            for _ in range(20):
                response = await client.post(
                    "/v1/models/int-sum/predict", params={"version": "1"}, json=INTS_BODY
                )
                assert response.status_code == 200, response.text
            # At most one listing (none if the preload's is still fresh), never on the loop.
            assert len(listed_on) <= 1
            assert loop_thread not in listed_on
            info = (await client.get("/v1/models/int-sum")).json()
            assert info["version"] == "39" and len(info["versions"]) == 39

    asyncio.run(scenario())


# -- the model's real state, and loads that hang -------------------------------------------


@contextlib.contextmanager
def _held_loads(monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    """Every model load waits for the event (set on exit whatever happens)."""
    go = threading.Event()

    def held(model: Any, options: Any = None) -> ModelRunner:
        go.wait(HANG_GUARD_S)
        return load_runner(model, options)

    monkeypatch.setattr(models_module, "load_runner", held)
    try:
        yield go
    finally:
        go.set()


def _load_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("as-deploy load")]


def _recording_loads(
    monkeypatch: pytest.MonkeyPatch, go: threading.Event, closed: list[str]
) -> None:
    """Loads wait for ``go``; each runner's close is recorded in ``closed``."""

    def held(model: Any, options: Any = None) -> ModelRunner:
        go.wait(HANG_GUARD_S)
        runner = load_runner(model, options)
        close = runner.close

        def recorded() -> None:
            closed.append(model.manifest.name)
            close()

        runner.close = recorded  # type: ignore[method-assign]
        return runner

    monkeypatch.setattr(models_module, "load_runner", held)


def test_stopping_while_a_model_loads_waits_for_the_load_and_releases_it(
    repo: Path, h: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Seen: a server stopped while a preload ran exited with the load's thread inside
    # onnxruntime, which aborted the process ("terminate called without an active
    # exception", exit -6) one time in five.
    go = threading.Event()
    closed: list[str] = []
    _recording_loads(monkeypatch, go, closed)

    async def scenario() -> None:
        app = create_app(ServerSettings(preload=["int-sum:1"]), repo=repo)
        try:
            async with h.running(app, ready=False):
                deadline = asyncio.get_running_loop().time() + HANG_GUARD_S
                while not app.state.server.models.loading(("int-sum", "1")):
                    assert asyncio.get_running_loop().time() < deadline
                    await asyncio.sleep(0.01)
                # The load finishes only once the server has begun to stop.
                threading.Timer(0.2, go.set).start()
            # Stopped: no load is left running, and what it loaded was closed.
            assert _load_threads() == []
            assert closed == ["int-sum"]
        finally:
            go.set()

    asyncio.run(scenario())


def test_stopping_leaves_a_load_past_its_deadline_behind_with_a_warning(
    repo: Path, h: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # A load that hangs (a network file system that never answers) must not keep the
    # server from stopping: it is waited for until its model_load_timeout_s deadline.
    go = threading.Event()
    closed: list[str] = []
    _recording_loads(monkeypatch, go, closed)

    async def scenario() -> None:
        settings = ServerSettings(preload=["int-sum:1"], model_load_timeout_s=0.3)
        app = create_app(settings, repo=repo)
        try:
            with caplog.at_level("WARNING", logger="as_deploy"):
                async with h.running(app, ready=False):
                    deadline = asyncio.get_running_loop().time() + HANG_GUARD_S
                    while not app.state.server.models.loading(("int-sum", "1")):
                        assert asyncio.get_running_loop().time() < deadline
                        await asyncio.sleep(0.01)
            assert len(_load_threads()) == 1
            assert "past model_load_timeout_s=0.3 s; the server stops without it" in caplog.text
            assert closed == []
        finally:
            go.set()
        for thread in _load_threads():
            thread.join(HANG_GUARD_S)

    asyncio.run(scenario())


def test_metadata_reports_loading_loaded_and_the_409_of_a_refused_model(
    repo: Path, h: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # int-sum/2: a manifest whose input name is not the model's: the runtime refuses it.
    broken = _add_version(repo, "int-sum", "1", "2")
    manifest = json.loads((broken / "manifest.json").read_text())
    manifest["inputs"][0]["name"] = "tokens"
    (broken / "manifest.json").write_text(json.dumps(manifest))

    async def scenario() -> None:
        app = create_app(ServerSettings(preload=[]), repo=repo)
        async with h.running(app) as client:
            url = "/v1/models/int-sum"
            assert (await client.get(url, params={"version": "1"})).json()["state"] == "unloaded"
            with _held_loads(monkeypatch) as go:
                predict = asyncio.create_task(
                    client.post(f"{url}/predict", params={"version": "1"}, json=INTS_BODY)
                )
                deadline = asyncio.get_running_loop().time() + HANG_GUARD_S
                while not app.state.server.models.loading(("int-sum", "1")):
                    assert asyncio.get_running_loop().time() < deadline
                    await asyncio.sleep(0.01)
                info = (await client.get(url, params={"version": "1"})).json()
                assert info["state"] == "loading" and info["loaded"] is False
                go.set()
                assert (await predict).status_code == 200
            info = (await client.get(url, params={"version": "1"})).json()
            assert info["state"] == "loaded" and info["loaded"] is True
            # Before any load its files are fine; once the runtime refused it, the metadata
            # answers the predict's 409.
            assert (await client.get(url, params={"version": "2"})).json()["state"] == "unloaded"
            refused = await client.post(
                f"{url}/predict", params={"version": "2"}, json={"inputs": {"tokens": [[1] * 4]}}
            )
            _error(refused, 409, "model_unavailable", "inputs ['tokens'] do not match")
            again = await client.get(url, params={"version": "2"})
            assert again.json() == refused.json()
            # Refused again without opening it again, until its files change.
            text = (await client.get("/metrics")).text
            await client.post(
                f"{url}/predict", params={"version": "2"}, json={"inputs": {"tokens": [[1] * 4]}}
            )
            later = (await client.get("/metrics")).text
            loads = "as_deploy_model_loads_total"
            assert h.metric_value(later, loads, model="int-sum") == h.metric_value(
                text, loads, model="int-sum"
            )

    asyncio.run(scenario())


def test_a_load_that_hangs_is_a_409_and_health_and_other_models_go_on(
    repo: Path, h: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = ServerSettings(preload=["int-sum"], model_load_timeout_s=0.5)

    async def scenario() -> None:
        app = create_app(settings, repo=repo)
        async with h.running(app) as client:
            with _held_loads(monkeypatch) as go:
                hung = await client.post("/v1/models/digits-cnn/predict", json=DIGITS_BODY)
                _error(
                    hung,
                    409,
                    "load_timeout",
                    "model digits-cnn/1 did not load within 0.5 s (model_load_timeout_s)",
                )
                assert (await client.get("/health")).status_code == 200
                ok = await client.post("/v1/models/int-sum/predict", json=INTS_BODY)
                assert ok.status_code == 200, ok.text
                # Asked again while it still hangs: answered at once, no second load.
                _error(
                    await client.post("/v1/models/digits-cnn/predict", json=DIGITS_BODY),
                    409,
                    "load_timeout",
                )
                go.set()
            # The load went on in the background; when it ends the model serves.
            deadline = asyncio.get_running_loop().time() + HANG_GUARD_S
            while app.state.server.models.entry(("digits-cnn", "1")) is None:
                assert asyncio.get_running_loop().time() < deadline
                await asyncio.sleep(0.01)
            served = await client.post("/v1/models/digits-cnn/predict", json=DIGITS_BODY)
            assert served.status_code == 200, served.text
            text = (await client.get("/metrics")).text
            assert h.metric_value(text, "as_deploy_model_loads_total", model="digits-cnn") == 1

    asyncio.run(scenario())
