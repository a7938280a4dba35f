"""hatcl: continual learning with hard attention masks (HAT, AdaHAT, FG-AdaHAT) and gates.

Nothing heavy is imported here: subpackages are imported on demand, and so are the two names
for bringing one's own model, ``hatcl.wrap`` and ``hatcl.Learner``, and ``hatcl.load`` (a
finished run back as a ``Run``).
"""

__version__ = "0.1.0"

_LAZY = {"wrap": "hatcl.wrap", "Learner": "hatcl.learner", "load": "hatcl.product.load"}


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'hatcl' has no attribute {name!r}")
    import importlib

    module = importlib.import_module(_LAZY[name])
    return module if name == "wrap" else getattr(module, name)
