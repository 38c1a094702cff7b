"""Readable generated run names such as ``bold-heron-042``."""

from __future__ import annotations

import random

__all__ = ["random_run_name"]

_ADJECTIVES = ("amber", "bold", "brisk", "calm", "clever", "crisp", "eager", "fair", "gentle",
               "glad", "keen", "lucid", "merry", "nimble", "proud", "quiet", "rapid", "sharp",
               "steady", "swift", "tidy", "vivid", "warm", "wise")
_NOUNS = ("badger", "bison", "crane", "falcon", "finch", "fox", "gecko", "heron", "ibis",
          "lynx", "marten", "newt", "otter", "owl", "panda", "puffin", "raven", "seal",
          "stork", "tapir", "trout", "wren", "yak", "zebra")


def random_run_name() -> str:
    rng = random.SystemRandom()
    return f"{rng.choice(_ADJECTIVES)}-{rng.choice(_NOUNS)}-{rng.randrange(1000):03d}"
