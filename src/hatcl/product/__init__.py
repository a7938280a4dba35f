"""A finished run as a product: :func:`hatcl.load` and each task's compact exported network.

``load.py`` gives back a run (configuration, data, model, predict, test); ``prune.py`` and
``lower*.py`` turn one task's masked subnetwork into plain torch modules with the masked-off units
removed; ``export.py`` writes it as a ``torch.export`` program or a state dict.
"""
