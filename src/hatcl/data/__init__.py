"""hatcl.data: data sources, continual-learning scenarios and the task-sequence builder.

Names are resolved lazily so that ``import hatcl.data`` does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "TensorSplit": "hatcl.data.base",
    "TaskData": "hatcl.data.base",
    "ContinualData": "hatcl.data.base",
    "DataConfig": "hatcl.data.base",
    "SourceData": "hatcl.data.base",
    "build_continual_data": "hatcl.data.base",
    "SOURCES": "hatcl.data.registries",
    "SCENARIOS": "hatcl.data.registries",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'hatcl.data' has no attribute {name!r}")
