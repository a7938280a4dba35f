"""A random generator whose state travels in ``state_dict`` (so checkpoints resume its draws)."""

from __future__ import annotations

import torch
from torch import nn


class CheckpointedGenerator(nn.Module):
    """A ``torch.Generator`` on the draws' device, seeded once, its state kept in a buffer.

    The generator is made at the first draw, seeded with ``seed`` or, when ``seed`` is ``None``,
    with a number drawn from torch's global generator when this module is built (seeded by the
    run, so a run's seed fixes these draws too; never inside a training step). ``state_dict``
    stores its state; loading one continues from there.

    Args:
        seed: the generator's seed (``None``: drawn from the global generator now).
    """

    def __init__(self, *, seed: int | None = None) -> None:
        super().__init__()
        # drawn here, not at the first draw: that one happens inside a training step (no host read)
        self.seed = int(torch.randint(0, 2**62, (1,), device="cpu")) if seed is None else seed
        self.register_buffer("state", torch.zeros(0, dtype=torch.uint8))
        self._generator: torch.Generator | None = None

    def get(self, device: torch.device) -> torch.Generator:
        """The generator for draws on ``device`` (made, or restored from the buffer, on use)."""
        generator = self._generator
        if generator is not None and generator.device == torch.device(device):
            return generator
        generator = torch.Generator(device=device)
        if not (self.state.numel() and _restored(generator, self.state)):
            generator.manual_seed(self.seed)
        self._generator = generator
        # the buffer takes the state's size now, on every process alike (DDP compares buffers)
        self.state = generator.get_state().to(self.state.device)
        return generator

    def uniform(self, count: int, *, device: torch.device) -> torch.Tensor:
        """``count`` float64 draws from U[0, 1) on ``device`` (float32 where float64 is missing)."""
        dtype = torch.float32 if torch.device(device).type == "mps" else torch.float64
        return torch.rand(count, generator=self.get(device), device=device, dtype=dtype)

    def _save_to_state_dict(self, destination, prefix, keep_vars) -> None:
        if self._generator is not None:
            self.state = self._generator.get_state().to(self.state.device)
        super()._save_to_state_dict(destination, prefix, keep_vars)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        saved = state_dict.get(prefix + "state")
        if saved is not None:
            self.state = torch.empty_like(saved, device=self.state.device)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self._generator = None


def _restored(generator: torch.Generator, state: torch.Tensor) -> bool:
    """Set ``generator`` to ``state``; False if the state is another device type's."""
    try:
        generator.set_state(state.cpu())
    except RuntimeError:
        return False
    return True
