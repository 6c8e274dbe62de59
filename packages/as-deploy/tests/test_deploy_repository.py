"""The model repository: add then load round-trips; every hostile case is refused."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
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
