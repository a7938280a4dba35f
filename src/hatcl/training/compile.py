"""``trainer.compile=true``: the backbone's forward through ``torch.compile``.

The backbone's training forward is compiled in place (as ``nn.Module.compile`` does), so its
``state_dict`` keys, checkpoints and every hook of the algorithms are unchanged: the masked
forward (gates, mask products, activations) and its backward become a few fused kernels, the
hooks stay eager. Validation, test and end-of-task passes (EWC's Fisher information reads
layer outputs through hooks) run eagerly.
Task ids and the stage select graphs (one compilation per task and stage, cached); the mask
scale is a dynamic float after its first change. Compilation happens at the first forward:
a network ``torch.compile`` cannot handle fails there with a :class:`CompileError` that names
the backbone and says how to run without compiling.
"""

from __future__ import annotations

import torch
from torch import nn

from hatcl.masking.stage import Stage

BACKEND = "inductor"
"""The ``torch.compile`` backend (tests use ``aot_eager``: the same tracing, no C++ build)."""


class CompileError(RuntimeError):
    """``torch.compile`` could not compile the backbone (run with ``trainer.compile=false``)."""


def compile_backbone(model: nn.Module) -> None:
    """Compile ``model.backbone``'s forward in place; errors at its first call are explained.

    Raises:
        TypeError: if ``model`` has no backbone module.
    """
    backbone = getattr(model, "backbone", None)
    if not isinstance(backbone, nn.Module):
        raise TypeError(f"trainer.compile needs a model with a backbone module, got {model!r}")
    torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 64)
    compiled = torch.compile(backbone._call_impl, backend=BACKEND)
    backbone._compiled_call_impl = CompiledCall(
        compiled, eager=backbone._call_impl, name=type(backbone).__name__
    )


class CompiledCall:
    """The compiled call of one backbone; a copy of the backbone (a teacher, a per-task
    backbone) runs eagerly rather than through the original's compiled graph."""

    def __init__(self, compiled, *, eager, name: str) -> None:
        self.compiled = compiled
        self.eager = eager
        self.name = name

    def __deepcopy__(self, memo) -> None:
        return None

    def __call__(self, *args, **kwargs):
        if kwargs.get("stage") is not Stage.TRAIN:
            return self.eager(*args, **kwargs)
        try:
            return self.compiled(*args, **kwargs)
        except (torch._dynamo.exc.TorchDynamoException, RuntimeError) as error:
            if isinstance(error, CompileError) or not _from_compiler(error):
                raise
            text = str(error).strip()
            first = text.splitlines()[0] if text else ""
            raise CompileError(
                f"trainer.compile=true: torch.compile could not compile the backbone "
                f"{self.name} ({type(error).__name__}: {first}); run it with "
                "trainer.compile=false"
            ) from error


def _from_compiler(error: BaseException) -> bool:
    """Whether ``error`` comes from torch's compiler stack (not from the network's own code)."""
    module = type(error).__module__ or ""
    return module.startswith(("torch._dynamo", "torch._inductor", "torch.fx"))
