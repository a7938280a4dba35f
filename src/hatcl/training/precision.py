"""Which ``trainer.precision`` values hatcl supports, checked before any work.

- ``32-true`` (default) and ``64-true``: the whole model, its masks and every algorithm state in
  that dtype (Lightning's precision plugin converts the module before the task starts).
- ``16-mixed`` (CUDA) and ``bf16-mixed`` (CUDA with bf16 support, or CPU): parameters, task
  embeddings, masks, gradients and every algorithm buffer (mask store, importance accumulator
  and summative importance, EWC's Fisher, the adjustment rules' per-task tensors) stay float32;
  only the forward's matrix products and convolutions run in half precision (autocast). Under
  ``16-mixed`` a step the grad scaler skips (inf or nan gradients) changes no importance,
  statistic or mask.

``16-true`` and ``bf16-true`` (the whole model in half precision) are refused: a task embedding
``e`` in half precision cannot resolve ``sigmoid(s * e)`` at ``s_max = 400``, and the summed
importance loses its small terms.
"""

from __future__ import annotations

SUPPORTED_PRECISIONS = ("32-true", "64-true", "16-mixed", "bf16-mixed")
#: Lightning's short names of the supported precisions.
ALIASES = {32: "32-true", "32": "32-true", 64: "64-true", "64": "64-true", 16: "16-mixed"}
ALIASES.update({"16": "16-mixed", "bf16": "bf16-mixed"})


def check_precision(*, precision: object, accelerator: object) -> str:
    """Return ``precision`` (short names spelled out) if hatcl supports it on ``accelerator``.

    Raises:
        ValueError: naming the value and the valid ones (e.g. ``16-mixed`` on a CPU, which
            Lightning would silently replace by ``bf16-mixed``).
    """
    precision = ALIASES.get(precision, precision)
    if not isinstance(precision, str) or precision not in SUPPORTED_PRECISIONS:
        raise ValueError(
            f"trainer.precision={precision!r} is not supported; valid: "
            f"{', '.join(SUPPORTED_PRECISIONS)} (16-mixed needs a CUDA GPU; the whole model in "
            "half precision, 16-true or bf16-true, is not supported: masks and importances need "
            "float32)"
        )
    if precision == "16-mixed" and (accelerator == "cpu" or _auto_without_cuda(accelerator)):
        raise ValueError(
            "trainer.precision=16-mixed needs a CUDA GPU (trainer.accelerator=gpu); on "
            "trainer.accelerator=cpu use bf16-mixed, 32-true or 64-true"
        )
    if precision == "bf16-mixed" and accelerator in ("gpu", "cuda"):
        _check_cuda_bf16()
    return precision


def _auto_without_cuda(accelerator: object) -> bool:
    if accelerator != "auto":
        return False
    import torch

    return not torch.cuda.is_available()


def _check_cuda_bf16() -> None:
    import torch

    if torch.cuda.is_available() and not torch.cuda.is_bf16_supported():
        raise ValueError(
            "trainer.precision=bf16-mixed but this GPU has no bfloat16 support "
            f"({torch.cuda.get_device_name()}); use 16-mixed or 32-true"
        )
