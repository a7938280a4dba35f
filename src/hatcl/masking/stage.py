"""The stages of a forward pass, which decide the mask a HAT layer applies."""

from enum import Enum


class Stage(str, Enum):
    """Training (annealed soft mask), validation (sigmoid(s_max e)) or test (stored binary mask)."""

    TRAIN = "train"
    VALIDATION = "validation"
    TEST = "test"
