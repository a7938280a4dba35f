"""The training progress bar: epochs counted from 1 (``Epoch 1/1`` for a one-epoch run).

The values it shows (training loss and accuracy, capacity, validation accuracy) are the module's
``progress_values``, set where the module records them, not logged through Lightning.
"""

from __future__ import annotations

from lightning.pytorch.callbacks import RichProgressBar


class EpochProgressBar(RichProgressBar):
    """Lightning's rich progress bar, its epoch shown 1-based out of ``max_epochs``."""

    def get_metrics(self, trainer, pl_module) -> dict:  # noqa: ANN001
        """Lightning's items and the module's latest ``progress_values``."""
        items = super().get_metrics(trainer, pl_module)
        items.update(getattr(pl_module, "progress_values", {}))
        return items

    def _get_train_description(self, current_epoch: int) -> str:
        description = f"Epoch {current_epoch + 1}"
        if self.trainer.max_epochs is not None:
            description += f"/{self.trainer.max_epochs}"
        width = len(self.validation_description)
        return f"{description:{width}}" if width > len(description) else description
