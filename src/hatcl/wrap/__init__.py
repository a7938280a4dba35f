"""Wrap any PyTorch network as a HAT-masked backbone: ``hatcl.wrap(model, example_input)``.

The package is callable (``hatcl.wrap(...)`` is :func:`hatcl.wrap.backbone.wrap`): importing a
submodule sets the attribute ``hatcl.wrap`` to this package, so the package itself must be the
function users call.
"""

from __future__ import annotations

import sys
import types

from hatcl.wrap.backbone import WrappedBackbone, wrap

__all__ = ["WrappedBackbone", "wrap"]


class _CallableModule(types.ModuleType):
    def __call__(self, *args, **kwargs):
        return wrap(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
