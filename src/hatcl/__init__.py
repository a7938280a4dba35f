"""hatcl: continual learning with hard attention masks (HAT, AdaHAT, FG-AdaHAT) and gates.

Nothing heavy is imported here: subpackages are imported on demand.
"""

__version__ = "0.1.0"
