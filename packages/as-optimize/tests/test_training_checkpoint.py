"""Checkpoints: what they hold, how they are verified, pruned, and what a failed write leaves."""

from __future__ import annotations

import errno
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import torch
from torch import nn

from as_optimize import CheckpointStateError, CheckpointWriteError, NoCheckpointError
from as_optimize.training import CheckpointStore

if TYPE_CHECKING:
    from conftest import FullDisk


def _trained() -> tuple[nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, betas=(0.8, 0.95))
    for _ in range(3):
        opt.zero_grad()
        model(torch.randn(5, 4)).sum().backward()
        opt.step()
    return model, opt


def _save(
    store: CheckpointStore,
    step: int,
    model: nn.Module,
    opt: torch.optim.Optimizer,
    metrics: dict[str, float] | None = None,
) -> Path:
    state = {"optimizer": opt.state_dict(), "position": {"step": step}, "odd": math.inf}
    return store.save(step=step, epoch=0, model=model, state=state, metrics=metrics).path


def test_a_checkpoint_round_trips_weights_and_optimizer_state_without_pickle(
    tmp_path: Path,
) -> None:
    model, opt = _trained()
    store = CheckpointStore(tmp_path / "ckpt")
    folder = _save(store, 7, model, opt)
    assert sorted(p.name for p in folder.iterdir()) == [
        "manifest.json",
        "model.safetensors",
        "state.json",
        "state.safetensors",
    ]
    assert (tmp_path / "ckpt" / "LATEST").read_text(encoding="utf-8") == "step-000000007\n"
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["step"] == 7 and set(manifest["files"]) == {
        "model.safetensors",
        "state.json",
        "state.safetensors",
    }
    loaded = store.load_latest()
    fresh, fresh_opt = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)), None
    loaded.restore_model(fresh)
    for a, b in zip(model.state_dict().values(), fresh.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    fresh_opt = torch.optim.AdamW(fresh.parameters(), lr=1.0)
    fresh_opt.load_state_dict(loaded.state["optimizer"])
    assert fresh_opt.param_groups[0]["betas"] == (0.8, 0.95)  # a tuple stays a tuple
    assert fresh_opt.param_groups[0]["lr"] == 1e-2
    saved = opt.state_dict()["state"]
    assert set(fresh_opt.state_dict()["state"]) == set(saved)  # integer keys stay integers
    assert torch.equal(fresh_opt.state_dict()["state"][0]["exp_avg"], saved[0]["exp_avg"])
    assert loaded.state["odd"] == math.inf


def test_tied_weights_are_stored_once_and_restored_tied(tmp_path: Path) -> None:
    embed = nn.Embedding(10, 4)
    head = nn.Linear(4, 10, bias=False)
    head.weight = embed.weight
    model = nn.ModuleDict({"embed": embed, "head": head})
    store = CheckpointStore(tmp_path)
    store.save(step=1, epoch=0, model=model, state={})
    loaded = store.load_latest()
    assert loaded.aliases == {"head.weight": "embed.weight"}
    other = nn.ModuleDict({"embed": nn.Embedding(10, 4), "head": nn.Linear(4, 10, bias=False)})
    loaded.restore_model(other)
    head_weight = other["head"].weight
    assert isinstance(head_weight, torch.Tensor)
    assert torch.equal(head_weight, embed.weight)


def test_state_that_needs_pickle_is_refused_with_its_place(tmp_path: Path) -> None:
    model, _ = _trained()
    store = CheckpointStore(tmp_path)
    with pytest.raises(
        CheckpointStateError, match=r"cannot save scheduler\.fn: a builtins\.function"
    ):
        store.save(step=1, epoch=0, model=model, state={"scheduler": {"fn": lambda: 1}})
    assert store.checkpoints() == []


@pytest.mark.parametrize("damage", ["flip_byte", "truncate", "delete", "bad_manifest"])
def test_a_damaged_checkpoint_is_skipped_kept_aside_and_the_previous_one_used(
    tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    model, opt = _trained()
    store = CheckpointStore(tmp_path, keep_last=5)
    _save(store, 1, model, opt)
    newest = _save(store, 2, model, opt)
    target = newest / "model.safetensors"
    if damage == "flip_byte":
        data = bytearray(target.read_bytes())
        data[len(data) // 2] ^= 0xFF
        target.write_bytes(bytes(data))
    elif damage == "truncate":
        target.write_bytes(target.read_bytes()[:-10])
    elif damage == "delete":
        target.unlink()
    else:
        (newest / "manifest.json").write_text("{", encoding="utf-8")
    loaded = store.load_latest()
    assert loaded.info.step == 1
    assert "step-000000002" in caplog.text and "skipp" in caplog.text
    if damage != "bad_manifest":  # an unreadable manifest is never a candidate at all
        assert (tmp_path / "step-000000002.corrupt").is_dir()  # kept for inspection


def test_no_checkpoint_at_all_says_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(NoCheckpointError, match=r"no complete checkpoint in .*empty"):
        CheckpointStore(tmp_path / "empty").load_latest()


def test_retention_keeps_the_newest_and_the_best(tmp_path: Path) -> None:
    model, opt = _trained()
    store = CheckpointStore(tmp_path, keep_last=2, keep_best=1, best_metric="val_loss")
    losses = {1: 0.9, 2: 0.3, 3: 0.5, 4: 0.6, 5: 0.7}
    for step, loss in losses.items():
        _save(store, step, model, opt, {"val_loss": loss})
    assert [info.step for info in store.checkpoints()] == [5, 4, 2]


@pytest.mark.parametrize("after_bytes", [0, 3000])
def test_disk_full_leaves_the_previous_checkpoint_loadable_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, after_bytes: int, full_disk: FullDisk
) -> None:
    model, opt = _trained()
    store = CheckpointStore(tmp_path)
    _save(store, 1, model, opt)
    before = sorted(p.name for p in tmp_path.iterdir())
    full_disk(tmp_path, after_bytes)
    with pytest.raises(CheckpointWriteError) as info:
        _save(store, 2, model, opt)
    monkeypatch.undo()
    message = str(info.value)
    assert "could not write checkpoint step-000000002" in message
    assert "No space left on device (errno 28)" in message
    assert "the previous checkpoint step-000000001 is intact" in message
    assert "free some disk space" in message
    assert info.value.errno == errno.ENOSPC and info.value.previous == tmp_path / "step-000000001"
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no half checkpoint left
    assert store.load_latest().info.step == 1
    assert _save(store, 2, model, opt).name == "step-000000002"  # space again: it works


def test_leftovers_of_an_interrupted_writer_are_cleaned(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path)
    (tmp_path / ".step-000000003.abc.tmp").mkdir()
    (tmp_path / ".step-000000003.abc.tmp" / "model.safetensors").write_bytes(b"half")
    assert [p.name for p in store.clean_temporary()] == [".step-000000003.abc.tmp"]
    assert list(tmp_path.iterdir()) == []


def test_checkpoint_tensor_files_are_the_bytes_safetensors_writes() -> None:
    # The checkpoint lays out its safetensors files itself (a third of the library's cost
    # on the training loop's thread); they must stay the format, byte for byte.
    import safetensors.torch as st

    from as_optimize.training._checkpoint import tensor_file_bytes

    torch.manual_seed(0)
    base = torch.randn(3, 4)
    tensors = {
        "weight": base,
        "transposed": base.t(),  # not contiguous
        "shared": base,  # the same memory under two names
        "row": base[1],  # a view into a larger storage
        "empty": torch.zeros(0, 5),
        "scalar": torch.tensor(7.5),
        "half": torch.randn(5).half(),
        "brain": torch.randn(2, 2).bfloat16(),
        "counts": torch.arange(9, dtype=torch.int64),
        "small": torch.arange(-3, 3, dtype=torch.int8),
        "mask": torch.tensor([True, False, True]),
    }
    ours = tensor_file_bytes(tensors)
    reference = st.save({k: v.contiguous().clone() for k, v in tensors.items()})
    assert ours == reference
    loaded = st.load(ours)
    assert set(loaded) == set(tensors)
    for name, tensor in tensors.items():
        assert torch.equal(loaded[name], tensor), name


def test_checkpoint_bytes_are_a_copy_taken_at_the_snapshot(tmp_path: Path) -> None:
    model, opt = _trained()
    store = CheckpointStore(tmp_path)
    snapshot = store.snapshot(step=1, epoch=0, model=model, state={"optimizer": opt.state_dict()})
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)  # training goes on while the snapshot waits to be written
    store.write(snapshot)
    loaded = store.load_latest()
    for name, tensor in before.items():
        assert torch.equal(loaded.model[name], tensor), name
