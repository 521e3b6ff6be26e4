"""Split text into words."""

import re

WORD = re.compile(r"[A-Za-z0-9']+")


def words(text: str) -> list:
    """The words of `text`, lowercased, in order."""
    return [w.lower() for w in WORD.findall(text)]
