"""Fast first runs: the thread policy (``trainer.num_threads: null``) and the short-run note.

The thread policy decides how many torch threads a run uses when ``trainer.num_threads`` is null.

Measured with ``benchmarks/thread_policy.py`` (docs/performance.md, "Threads"): a step of a
network of the built-in sizes is a chain of kernels too small to split usefully; a second
thread only adds synchronisation, and on a machine whose other cores are busy each step waits
for a core (on the 2-core development machine under load, two threads made a step of the MLP
33x and of the CNN, 4.9M parameters, 28x slower). So a model below
:data:`SMALL_MODEL_PARAMETERS` (every built-in backbone at its default size; ResNet-18 has 11.2M)
trains with one thread; a larger one keeps torch's default (one thread per core).
``trainer.num_threads=<n>`` always wins.
"""

from __future__ import annotations

import torch
from torch import nn

SMALL_MODEL_PARAMETERS = 20_000_000
"""Below this many parameters a model trains with one torch thread (unless configured)."""


def choose_threads(num_threads: int | None, *, model: nn.Module) -> int | None:
    """The number of torch threads for training ``model`` (``None``: leave torch's setting).

    Args:
        num_threads: ``trainer.num_threads`` (``None``: apply the policy).
        model: the built model (its parameter count decides).
    """
    if num_threads is not None:
        return num_threads
    parameters = sum(p.numel() for p in model.parameters())
    return 1 if parameters < SMALL_MODEL_PARAMETERS else None


def apply_threads(num_threads: int | None, *, model: nn.Module) -> int:
    """Set torch's thread count by :func:`choose_threads`; return the count in effect."""
    chosen = choose_threads(num_threads, model=model)
    if chosen is not None:
        torch.set_num_threads(chosen)
    return torch.get_num_threads()


SHORT_RUN_EPOCHS = 3
"""A HAT-family run with fewer epochs per task ends with :func:`short_run_note`."""


def short_run_note(max_epochs: int) -> str:
    """Why a run of ``max_epochs`` epochs per task says little about a masking method."""
    return (
        f"note: {max_epochs} epoch(s) per task is a smoke test, not a comparison: the mask scale "
        "anneals over each epoch and the masks need several epochs to settle, so HAT, AdaHAT "
        "and FG-AdaHAT score below fine-tuning here; compare methods with the default "
        "trainer.max_epochs=10 (docs/results.md)"
    )


def note_short_run(console, *, uses_masks: bool, epochs: int) -> None:
    """Print :func:`short_run_note` after a masking method's run shorter than 3 epochs/task."""
    if uses_masks and epochs < SHORT_RUN_EPOCHS:
        console.print(short_run_note(epochs))
