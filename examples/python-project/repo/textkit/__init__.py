"""Text utilities: each module is one task of the backlog."""

from textkit.words import words

__all__ = ["words"]
