"""The model repository: add then load round-trips; every hostile case is refused."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from as_deploy import (
    FileEntry,
    IntegrityError,
    InvalidNameError,
    Manifest,
    ManifestError,
    ModelNotFoundError,
    ModelRepository,
    Provenance,
    TensorSpec,
    UnsafePathError,
    VersionExistsError,
    sha256_file,
)
from as_deploy.repository import version_key

MODEL_BYTES = b"\x08\x07\x12\x07pytorch" + bytes(range(256)) * 4
LABEL_BYTES = b"cat\ndog\n"


def make_manifest(
    name: str, version: str, files: dict[str, bytes], roles: dict[str, str] | None = None
) -> Manifest:
    roles = roles or {}
    return Manifest(
        name=name,
        version=version,
        format="onnx",
        inputs=[TensorSpec(name="x", dtype="float32", shape=[None, 3])],
        outputs=[TensorSpec(name="y", dtype="float32", shape=[None, 2])],
        labels=["cat", "dog"],
        preprocessing={"scale": 1 / 255},
        files=[
            FileEntry(
                path=path,
                sha256=hashlib.sha256(data).hexdigest(),
                size_bytes=len(data),
                role=roles.get(path, "model"),  # type: ignore[arg-type]
            )
            for path, data in files.items()
        ],
        provenance=Provenance(source="unit test", created_at=datetime(2026, 11, 26, tzinfo=UTC)),
    )


def add_model(repo: ModelRepository, src: Path, name: str = "net", version: str = "1") -> Path:
    src.mkdir(parents=True, exist_ok=True)
    (src / "model.onnx").write_bytes(MODEL_BYTES)
    (src / "labels.txt").write_bytes(LABEL_BYTES)
    manifest = make_manifest(
        name,
        version,
        {"model.onnx": MODEL_BYTES, "extra/labels.txt": LABEL_BYTES},
        roles={"extra/labels.txt": "labels"},
    )
    return repo.add(
        manifest, {"model.onnx": src / "model.onnx", "extra/labels.txt": src / "labels.txt"}
    )


@pytest.fixture
def repo(tmp_path: Path) -> ModelRepository:
    return ModelRepository(tmp_path / "repo")


def test_add_then_load_round_trips(repo: ModelRepository, tmp_path: Path) -> None:
    directory = add_model(repo, tmp_path / "src")
    assert directory == repo.root.resolve() / "net" / "1"
    loaded = repo.load("net", "1")
    assert loaded.model_path.read_bytes() == MODEL_BYTES
    assert loaded.file("extra/labels.txt").read_bytes() == LABEL_BYTES
    assert loaded.manifest.labels == ["cat", "dog"]
    assert sha256_file(loaded.model_path) == hashlib.sha256(MODEL_BYTES).hexdigest()
    assert repo.list_models() == [("net", "1")]
    assert not [p for p in (repo.root / "net").iterdir() if p.name.startswith(".")]


def test_versions_and_latest_order_numbers_numerically(
    repo: ModelRepository, tmp_path: Path
) -> None:
    for version in ("1.9", "1.10", "1.2", "2.0-rc1"):
        add_model(repo, tmp_path / "src", version=version)
    assert repo.versions("net") == ["1.2", "1.9", "1.10", "2.0-rc1"]
    assert repo.latest("net") == "2.0-rc1"
    assert repo.load("net").manifest.version == "2.0-rc1"
    assert version_key("1.10") > version_key("1.9")


def test_empty_or_missing_repository(repo: ModelRepository) -> None:
    assert repo.list_models() == []
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        repo.load("net")


@pytest.mark.parametrize("bad", ["../x", "a/b", "..", ".hidden", "Upper", "a" * 65, ""])
def test_bad_names_are_refused_before_touching_disk(
    bad: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = ModelRepository(tmp_path / "missing")

    def boom(*args: object, **kwargs: object) -> None:
        raise AssertionError("touched the file system")

    monkeypatch.setattr(Path, "resolve", boom)
    monkeypatch.setattr(Path, "lstat", boom)
    with pytest.raises(InvalidNameError, match="invalid model name"):
        repo.load(bad)
    with pytest.raises(InvalidNameError, match="invalid model version"):
        repo.load("net", bad)
    with pytest.raises(InvalidNameError):
        repo.versions(bad)


def test_missing_model_and_version(repo: ModelRepository, tmp_path: Path) -> None:
    add_model(repo, tmp_path / "src")
    with pytest.raises(ModelNotFoundError, match="model not found"):
        repo.load("other", "1")
    with pytest.raises(ModelNotFoundError, match="version net/2 not found"):
        repo.load("net", "2")


def test_symlinked_version_directory_is_refused(repo: ModelRepository, tmp_path: Path) -> None:
    directory = add_model(repo, tmp_path / "src")
    (directory.parent / "2").symlink_to(directory, target_is_directory=True)
    with pytest.raises(UnsafePathError, match=r"version net/2 .*2 is a symlink"):
        repo.load("net", "2")
    assert repo.versions("net") == ["1"]


def test_symlinked_name_directory_is_refused(repo: ModelRepository, tmp_path: Path) -> None:
    add_model(repo, tmp_path / "src")
    (repo.root / "alias").symlink_to(repo.root / "net", target_is_directory=True)
    with pytest.raises(UnsafePathError, match=r"model .*alias is a symlink"):
        repo.load("alias", "1")
    assert repo.list_models() == [("net", "1")]
    manifest = make_manifest("alias", "9", {"model.onnx": MODEL_BYTES})
    (tmp_path / "m.onnx").write_bytes(MODEL_BYTES)
    with pytest.raises(UnsafePathError, match="symlink"):
        repo.add(manifest, {"model.onnx": tmp_path / "m.onnx"})


def test_symlinked_model_file_is_refused(repo: ModelRepository, tmp_path: Path) -> None:
    directory = add_model(repo, tmp_path / "src")
    model = directory / "model.onnx"
    model.unlink()
    model.symlink_to(tmp_path / "src" / "model.onnx")
    with pytest.raises(UnsafePathError, match=r"file 'model.onnx'.*is a symlink"):
        repo.load("net", "1")


def test_symlinked_subfolder_and_manifest_are_refused(
    repo: ModelRepository, tmp_path: Path
) -> None:
    directory = add_model(repo, tmp_path / "src")
    outside = tmp_path / "outside"
    (directory / "extra").rename(outside)
    (directory / "extra").symlink_to(outside, target_is_directory=True)
    with pytest.raises(UnsafePathError, match=r"extra is a symlink"):
        repo.load("net", "1")
    directory2 = add_model(repo, tmp_path / "src", version="2")
    manifest = directory2 / "manifest.json"
    real = tmp_path / "manifest.json"
    manifest.rename(real)
    manifest.symlink_to(real)
    with pytest.raises(UnsafePathError, match=r"manifest .* is a symlink"):
        repo.load("net", "2")


def test_manifest_file_path_with_dotdot_is_refused(repo: ModelRepository, tmp_path: Path) -> None:
    directory = add_model(repo, tmp_path / "src")
    manifest_path = directory / "manifest.json"
    data = json.loads(manifest_path.read_text())
    data["files"][0]["path"] = "../../../etc/passwd"
    manifest_path.write_text(json.dumps(data))
    with pytest.raises(ManifestError, match=r"manifest.json: .*files.0.path.*'\.\.'"):
        repo.load("net", "1")


def test_sha256_mismatch_after_add(repo: ModelRepository, tmp_path: Path) -> None:
    directory = add_model(repo, tmp_path / "src")
    model = directory / "model.onnx"
    data = bytearray(model.read_bytes())
    data[0] ^= 0xFF
    model.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match=r"model.onnx: sha256 is [0-9a-f]{64}, the manifest"):
        repo.load("net", "1")


def test_size_mismatch(repo: ModelRepository, tmp_path: Path) -> None:
    directory = add_model(repo, tmp_path / "src")
    with (directory / "extra" / "labels.txt").open("ab") as handle:
        handle.write(b"bird\n")
    with pytest.raises(IntegrityError, match=r"labels.txt: size is 13 bytes, the manifest says 8"):
        repo.load("net", "1")


def test_missing_file(repo: ModelRepository, tmp_path: Path) -> None:
    directory = add_model(repo, tmp_path / "src")
    (directory / "model.onnx").unlink()
    with pytest.raises(ModelNotFoundError, match=r"file 'model.onnx' .* not found"):
        repo.load("net", "1")


def test_corrupt_manifest_json(repo: ModelRepository, tmp_path: Path) -> None:
    directory = add_model(repo, tmp_path / "src")
    (directory / "manifest.json").write_text('{\n  "name": "net",\n  ,\n}')
    with pytest.raises(ManifestError, match=r"manifest.json: invalid JSON at line 3 column 3"):
        repo.load("net", "1")


def test_unknown_key_and_schema_version_2(repo: ModelRepository, tmp_path: Path) -> None:
    directory = add_model(repo, tmp_path / "src")
    manifest_path = directory / "manifest.json"
    data = json.loads(manifest_path.read_text())
    manifest_path.write_text(json.dumps({**data, "pickle": "x"}))
    with pytest.raises(ManifestError, match=r"manifest.json: .*pickle: Extra inputs"):
        repo.load("net", "1")
    manifest_path.write_text(json.dumps({**data, "schema_version": 2}))
    with pytest.raises(ManifestError, match="schema_version 2 is not supported"):
        repo.load("net", "1")


def test_manifest_for_another_version_is_refused(repo: ModelRepository, tmp_path: Path) -> None:
    directory = add_model(repo, tmp_path / "src")
    directory.rename(directory.parent / "3")
    with pytest.raises(ManifestError, match="is for net/1, but it is stored as net/3"):
        repo.load("net", "3")


def test_overwrite_is_refused(repo: ModelRepository, tmp_path: Path) -> None:
    add_model(repo, tmp_path / "src")
    with pytest.raises(VersionExistsError, match="net/1 already exists"):
        add_model(repo, tmp_path / "src")
    assert repo.load("net", "1").model_path.read_bytes() == MODEL_BYTES


def test_add_checks_sources_against_manifest(repo: ModelRepository, tmp_path: Path) -> None:
    source = tmp_path / "m.onnx"
    source.write_bytes(MODEL_BYTES + b"!")
    manifest = make_manifest("net", "1", {"model.onnx": MODEL_BYTES})
    with pytest.raises(IntegrityError, match=r"m.onnx \(for 'model.onnx'\): size is"):
        repo.add(manifest, {"model.onnx": source})
    with pytest.raises(ManifestError, match=r"missing \['model.onnx'\].*\['x.bin'\]"):
        repo.add(manifest, {"x.bin": source})
    assert repo.list_models() == []
    assert list((repo.root / "net").iterdir()) == []


_CHILD = """
import hashlib, sys, time
from datetime import UTC, datetime
from pathlib import Path
from as_deploy import (FileEntry, Manifest, ModelRepository, Provenance, TensorSpec,
                       VersionExistsError)
root, src, go = (Path(arg) for arg in sys.argv[1:4])
data = src.read_bytes()
spec = TensorSpec(name="x", dtype="float32", shape=[None])
manifest = Manifest(
    name="net", version="1", format="onnx", inputs=[spec], outputs=[spec],
    files=[FileEntry(path="model.onnx", sha256=hashlib.sha256(data).hexdigest(),
                     size_bytes=len(data), role="model")],
    provenance=Provenance(source="race", created_at=datetime.now(UTC)),
)
while not go.exists():
    time.sleep(0.001)
try:
    ModelRepository(root).add(manifest, {"model.onnx": src})
    print("won")
except VersionExistsError:
    print("lost")
"""


def test_concurrent_add_exactly_one_wins(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    source = tmp_path / "m.onnx"
    source.write_bytes(MODEL_BYTES)
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(root), str(source), str(go)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    go.touch()
    outcomes = sorted(proc.communicate(timeout=60)[0].strip() for proc in procs)
    assert [proc.returncode for proc in procs] == [0, 0]
    assert outcomes == ["lost", "won"]
    assert ModelRepository(root).load("net", "1").model_path.read_bytes() == MODEL_BYTES
    assert not [p for p in (root / "net").iterdir() if p.name.startswith(".")]


def test_sha256_file_streams(tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    data = os.urandom(3 * 1024 * 1024 + 7)
    big.write_bytes(data)
    assert sha256_file(big) == hashlib.sha256(data).hexdigest()


# -- files that are not regular files, manifests that break parsers, the cache ----------


def _bounded(work: Callable[[], object], fifo: Path) -> BaseException | None:
    """Run ``work`` in a thread; what it raised. Fails (and unblocks it) if it blocks."""
    raised: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as exc:  # handed to the test's thread
            raised.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(60)
    if thread.is_alive():
        # A reader blocked in open() on the FIFO goes on once a writer opens it.
        with contextlib.suppress(OSError):
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        thread.join(30)
        raise AssertionError(f"reading the repository blocked on the FIFO {fifo}")
    return raised[0] if raised else None


def test_fifo_manifest_is_refused_without_opening_it(repo: ModelRepository, tmp_path: Path) -> None:
    add_model(repo, tmp_path / "src")
    directory = add_model(repo, tmp_path / "src", version="2")
    (directory / "manifest.json").unlink()
    os.mkfifo(directory / "manifest.json")
    error = _bounded(lambda: repo.load("net", "2"), directory / "manifest.json")
    assert isinstance(error, UnsafePathError), error
    assert "manifest.json is a FIFO (named pipe), not a regular file" in str(error)
    assert repo.versions("net") == ["1"]
    with pytest.raises(UnsafePathError, match=r"manifest\.json is a FIFO"):
        repo.version_dir("net", "2")
    assert repo.version_dir("net", "1") == directory.parent / "1"


def test_fifo_model_file_is_refused_without_opening_it(
    repo: ModelRepository, tmp_path: Path
) -> None:
    directory = add_model(repo, tmp_path / "src")
    (directory / "extra" / "labels.txt").unlink()
    os.mkfifo(directory / "extra" / "labels.txt")
    error = _bounded(lambda: repo.load("net", "1"), directory / "extra" / "labels.txt")
    assert isinstance(error, UnsafePathError), error
    assert "'extra/labels.txt'" in str(error) and "is a FIFO (named pipe)" in str(error)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        pytest.param("[" * 100_000 + "]" * 100_000, "nested deeper than 64 levels", id="deep"),
        pytest.param('{"a": ' * 70 + "1" + "}" * 70, "nested deeper than 64 levels", id="objects"),
        pytest.param('{"n": ' + "1" * 5000 + "}", "an integer of 5000 digits", id="bigint"),
        pytest.param('{"n": NaN}', "NaN is not a JSON number", id="nan"),
        pytest.param('{"n": -Infinity}', "-Infinity is not a JSON number", id="infinity"),
        pytest.param('{"n": 1e999}', "1e999 is out of range", id="overflow"),
        pytest.param(" " * (1024 * 1024 + 1), "at most 1048576 bytes", id="over-1-mib"),
    ],
)
def test_manifest_that_breaks_a_parser_is_a_manifest_error(
    repo: ModelRepository, tmp_path: Path, text: str, why: str
) -> None:
    directory = add_model(repo, tmp_path / "src")
    (directory / "manifest.json").write_text(text)
    with pytest.raises(ManifestError, match=why) as caught:
        repo.load("net", "1")
    assert str(directory / "manifest.json") in str(caught.value)


def test_brackets_inside_strings_do_not_count_as_nesting(
    repo: ModelRepository, tmp_path: Path
) -> None:
    directory = add_model(repo, tmp_path / "src")
    manifest_path = directory / "manifest.json"
    data = json.loads(manifest_path.read_text())
    data["preprocessing"] = {"note": '[[[{{{ "\\" ' * 100}
    manifest_path.write_text(json.dumps(data))
    assert repo.load("net", "1").manifest.preprocessing["note"].startswith("[[[{{{")


def test_load_hashes_files_once_until_one_changes(repo: ModelRepository, tmp_path: Path) -> None:
    directory = add_model(repo, tmp_path / "src")
    first = repo.load("net", "1")
    assert repo.files_hashed == 2
    for _ in range(5):
        assert repo.load("net", "1") is first
    assert repo.files_hashed == 2
    # Tampered: verified again (the model file, the first, fails), then refused again
    # without hashing.
    model = directory / "model.onnx"
    data = bytearray(model.read_bytes())
    data[-1] ^= 0xFF
    model.write_bytes(bytes(data))
    for _ in range(3):
        with pytest.raises(IntegrityError, match="sha256"):
            repo.load("net", "1")
    assert repo.files_hashed == 3
    # A size that does not match is refused from the lstat: nothing is read.
    model.write_bytes(bytes(data) + b"!")
    with pytest.raises(IntegrityError, match="size is"):
        repo.load("net", "1")
    assert repo.files_hashed == 3
    # Without a cache every load hashes.
    model.write_bytes(MODEL_BYTES)
    uncached = ModelRepository(repo.root, cache_size=0)
    uncached.load("net", "1")
    uncached.load("net", "1")
    assert uncached.files_hashed == 4
