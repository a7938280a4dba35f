"""Registry of FG-AdaHAT's neuron-wise importance measures (torch-free catalogue).

Each entry resolves to an :class:`hatcl.importance.base.ImportanceMeasure`. Measures live in
their own modules and are added here with ``IMPORTANCE_TYPES.add(name, "module:attribute")``.
"""

from hatcl.registry import Registry

IMPORTANCE_TYPES = Registry("importance_type")
