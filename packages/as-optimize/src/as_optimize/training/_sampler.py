"""A sampler that resumes mid-epoch: the same order, from the sample where the run stopped."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING

from as_optimize.exceptions import MonitorInputError
from as_optimize.training._torch import load_torch

if TYPE_CHECKING:
    import torch
    from torch.utils.data import Sampler
else:
    torch = load_torch()
    Sampler = torch.utils.data.Sampler

__all__ = ["ResumableSampler"]


class ResumableSampler(Sampler[int]):
    """Indices ``0..size-1``, shuffled per epoch from ``seed``, resumable at any offset.

    The order of epoch ``e`` is ``torch.randperm(size)`` drawn from a generator seeded with
    ``seed + e``: it depends on nothing else, so a resumed run sees the same order, and the
    global random generators are not touched. The monitor records the epoch and how many
    samples of it were consumed (``batch_size`` of each step) and positions the sampler on
    resume; iteration then starts at that offset. Use it as a DataLoader's ``sampler=``.

    Args:
        size: The number of samples (``len(dataset)``).
        seed: The seed of the per-epoch orders.
        shuffle: False for ``0, 1, 2, ...`` every epoch.
    """

    def __init__(self, size: int, *, seed: int = 0, shuffle: bool = True) -> None:
        """Start at epoch 0, offset 0."""
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise MonitorInputError(f"ResumableSampler size must be an integer >= 0, got {size!r}")
        self.size = size
        self.seed = int(seed)
        self.shuffle = shuffle
        self.epoch = 0
        self.offset = 0
        self._before_iter: Callable[[], None] | None = None

    def set_epoch(self, epoch: int) -> None:
        """Start epoch ``epoch`` from its first sample."""
        self.set_position(epoch, 0)

    def set_position(self, epoch: int, offset: int) -> None:
        """The next iteration yields epoch ``epoch``'s order from sample ``offset`` on."""
        if not 0 <= offset <= self.size:
            raise MonitorInputError(
                f"sampler offset {offset} is outside 0..{self.size} (the dataset's size)"
            )
        self.epoch = int(epoch)
        self.offset = int(offset)

    def call_before_next_iteration(self, action: Callable[[], None] | None) -> None:
        """Run ``action`` once, when the next iteration starts.

        The monitor restores the random generators here on resume: a DataLoader draws its
        workers' base seed from the global generator when the loop asks for an iterator,
        before the sampler starts; restoring after that draw continues the generators
        exactly where the checkpoint left them.
        """
        self._before_iter = action

    def order(self, epoch: int) -> list[int]:
        """Epoch ``epoch``'s full order of indices."""
        if not self.shuffle:
            return list(range(self.size))
        generator = torch.Generator()
        generator.manual_seed(self.seed + epoch)
        return [int(i) for i in torch.randperm(self.size, generator=generator).tolist()]

    def __iter__(self) -> Iterator[int]:
        """The current epoch's indices from the current offset on."""
        action, self._before_iter = self._before_iter, None
        if action is not None:
            action()
        start, self.offset = self.offset, 0
        return iter(self.order(self.epoch)[start:])

    def __len__(self) -> int:
        """How many indices the next iteration yields."""
        return self.size - self.offset

    def state_dict(self) -> dict[str, int | bool]:
        """Seed, shuffle, size, epoch and offset."""
        return {
            "seed": self.seed,
            "shuffle": self.shuffle,
            "size": self.size,
            "epoch": self.epoch,
            "offset": self.offset,
        }

    def load_state_dict(self, state: Mapping[str, object]) -> None:
        """Restore :meth:`state_dict`'s output (the size must match the dataset's).

        Raises:
            MonitorInputError: The saved size differs from this sampler's.
        """
        size = int(str(state.get("size", self.size)))
        if size != self.size:
            raise MonitorInputError(
                f"the checkpoint's sampler covered {size} samples, this one {self.size}: "
                "the dataset changed, so the saved data order does not apply"
            )
        self.seed = int(str(state.get("seed", self.seed)))
        self.shuffle = bool(state.get("shuffle", self.shuffle))
        self.set_position(int(str(state.get("epoch", 0))), int(str(state.get("offset", 0))))
