"""Exceptions raised by crossrank.

Every error derives from :class:`CrossrankError` and also from the builtin it refines, so
``except ValueError`` keeps working for callers that do not know crossrank.
"""

from __future__ import annotations

__all__ = [
    "CrossrankError",
    "DataError",
    "DocumentTooLongError",
    "IncompatibleIndexError",
    "InvalidInputError",
    "InvalidModelError",
    "MissingExtraError",
    "ModelNotFoundError",
    "NonFiniteScoreError",
]


class CrossrankError(Exception):
    """Base class of every error crossrank raises on purpose."""


class InvalidInputError(CrossrankError, ValueError):
    """An argument or input value is not usable (the message says which and what to pass)."""


class DocumentTooLongError(InvalidInputError):
    """A document does not fit the model's budget and ``overflow="error"`` was asked for."""

    def __init__(self, message: str, *, index: int, n_tokens: int, budget: int) -> None:
        super().__init__(message)
        self.index = index
        self.n_tokens = n_tokens
        self.budget = budget


class NonFiniteScoreError(CrossrankError, ArithmeticError):
    """The model produced NaN or infinite scores (usually fp16 overflow or broken weights)."""


class ModelNotFoundError(CrossrankError, FileNotFoundError):
    """A model name or folder could not be resolved to a model."""


class InvalidModelError(CrossrankError, ValueError):
    """A model loaded but cannot serve as a reranker (for example it has several labels)."""


class MissingExtraError(CrossrankError, ImportError):
    """An optional dependency is not installed; the message names the ``pip install`` line."""

    def __init__(self, package: str, extra: str, purpose: str) -> None:
        super().__init__(
            f"{purpose} needs the '{package}' package, which is not installed. "
            f'Install it with: pip install "crossrank[{extra}]"'
        )
        self.package = package
        self.extra = extra


class DataError(CrossrankError, ValueError):
    """A collection file is missing or malformed (the message names the file and line)."""


class IncompatibleIndexError(CrossrankError, ValueError):
    """A saved index was built with a different embedding model than the one asked for."""
