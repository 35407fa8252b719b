"""Class names, by output index, of the data sets the models here are trained on. Plain data:
importing this loads neither torch nor anything else the evaluation needs.

``imagenet_classes.txt`` holds the 1000 ImageNet-1k class names in the order of the classifier's
outputs (the short names PyTorch Hub's ``imagenet_classes.txt`` lists), shipped with the package
so that the names are there offline: no package installed here carries them.
"""

from __future__ import annotations

import functools
import os
from typing import List

__all__ = ["FASHION_MNIST", "imagenet"]

#: Fashion-MNIST's ten classes, by label.
FASHION_MNIST = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                 "Ankle boot"]


@functools.lru_cache(maxsize=1)
def imagenet() -> List[str]:
    """The 1000 ImageNet-1k class names, by output index."""
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "imagenet_classes.txt"), encoding="utf-8") as f:
        names = [line.rstrip("\n") for line in f]
    if len(names) != 1000:  # a damaged install, not something to show as names
        raise ValueError(f"imagenet_classes.txt holds {len(names)} names, not 1000")
    return names
