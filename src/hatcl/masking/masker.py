"""The HAT mask mechanism: task embeddings and the store of finished tasks' masks."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import torch
from torch import nn

from hatcl.functional.hat_gate import binary_mask, hat_gate
from hatcl.masking.mask_store import MaskStore
from hatcl.masking.registries import INIT_MODES
from hatcl.masking.stage import Stage


class FlatMasks(dict):
    """Per-key unit masks that are views of one concatenated mask over every key.

    A plain ``dict`` for every reader; the HAT-family hooks read ``flat`` (the concatenation,
    in key order, differentiable) and ``embeddings`` (the concatenated embeddings the masks
    were computed from) to work on all layers at once instead of layer by layer.
    """

    def __init__(
        self, masks: Mapping[str, torch.Tensor], *, flat: torch.Tensor, embeddings: torch.Tensor
    ) -> None:
        super().__init__(masks)
        self.flat = flat
        self.embeddings = embeddings


class HATMasker(nn.Module):
    """Task embeddings (one vector per mask key) and the stored per-task masks.

    Args:
        unit_counts: number of units per mask key, in forward order.
    """

    task_specific = True  # the forward depends on task_id (Backbone.depends_on_task)

    def __init__(self, *, unit_counts: Mapping[str, int]) -> None:
        super().__init__()
        self.unit_counts = dict(unit_counts)
        # A list of pairs keeps the forward order (ParameterDict sorts the keys of a plain dict).
        self.embeddings = nn.ParameterDict(
            [(key, nn.Parameter(torch.randn(units))) for key, units in unit_counts.items()]
        )
        self.store = MaskStore(unit_counts=unit_counts)
        self.given_test_masks: Mapping[str, object] | None = None

    @contextmanager
    def test_masks(self, masks: Mapping[str, object]) -> Iterator[None]:
        """Within the block, test forwards use ``masks`` (e.g. stacked masks of several tasks)
        instead of the stored masks of the forward's ``task_id``."""
        previous, self.given_test_masks = self.given_test_masks, masks
        try:
            yield
        finally:
            self.given_test_masks = previous

    def reset_embeddings(self, *, init_mode: str) -> None:
        """Re-initialise every embedding by ``init_mode`` (a ``task_embedding_init_mode``)."""
        initialise = INIT_MODES.resolve(init_mode)
        for embedding in self.embeddings.values():
            initialise(embedding.data)

    def masks(self, *, stage: Stage, task_id: int, scale: float | None) -> dict[str, torch.Tensor]:
        """Per-key unit masks for a forward pass at ``stage``.

        Training and validation use ``sigmoid(scale * e)`` of the current embeddings (validation
        passes ``scale = s_max``), computed once over the concatenated embeddings of every key
        (a :class:`FlatMasks`); test uses the binary mask stored for ``task_id``.
        """
        if stage is Stage.TEST:
            if self.given_test_masks is not None:
                return dict(self.given_test_masks)
            return self.store.mask(task_id)
        if scale is None:
            raise ValueError(f"stage {stage.value!r} needs a mask scale s, got None")
        embeddings = list(self.embeddings.values())
        joined = torch.cat(embeddings) if len(embeddings) > 1 else embeddings[0]
        flat = hat_gate(joined, scale)
        pieces = flat.split([e.numel() for e in embeddings])
        return FlatMasks(zip(self.embeddings.keys(), pieces), flat=flat, embeddings=joined)

    @torch.no_grad()
    def store_current(self, *, task_id: int) -> dict[str, torch.Tensor]:
        """Store ``1[e > 0]`` as task ``task_id``'s binary masks and return them."""
        masks = {key: binary_mask(embedding) for key, embedding in self.embeddings.items()}
        self.store.store(task_id=task_id, masks=masks)
        return masks
