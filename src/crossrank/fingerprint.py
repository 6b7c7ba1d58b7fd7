"""Content fingerprints of files and folders: the one key every crossrank cache uses.

A model folder (for the loaded-model registry and the ONNX export) and a corpus file (for
the dense and BM25 index caches) are keyed by what they hold, not by their size and
modification time, which copies made with ``cp -p`` or ``rsync -a`` keep. Hashing is
memoised per file on ``(inode, size, mtime_ns, ctime_ns)``: the change time cannot be set
by a copy, so a rewritten file is always hashed again, and an unchanged one never is.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

__all__ = ["fingerprint_file", "fingerprint_folder", "text_key"]

_BLOCK = 1 << 20
_MEMO: dict[tuple[str, int, int, int, int], str] = {}
_MEMO_LOCK = threading.Lock()


def text_key(text: str) -> bytes:
    """A short, collision-resistant digest of a text (invalid surrogates are escaped)."""
    data = text.encode("utf-8", errors="surrogatepass")
    return hashlib.blake2b(data, digest_size=16).digest()


def fingerprint_file(path: str | os.PathLike[str]) -> str:
    """``sha256`` of a file's bytes (hex), memoised while the file is unchanged."""
    file = Path(path)
    stat = file.stat()
    key = (str(file.resolve()), stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)
    with _MEMO_LOCK:
        known = _MEMO.get(key)
    if known is not None:
        return known
    digest = hashlib.sha256()
    with file.open("rb") as handle:
        for block in iter(lambda: handle.read(_BLOCK), b""):
            digest.update(block)
    value = digest.hexdigest()
    with _MEMO_LOCK:
        _MEMO[key] = value
    return value


def _listed(folder: Path) -> list[Path]:
    """The files that make up a model folder: hidden files and READMEs left out."""
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file()
        and p.name.lower() != "readme.md"
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def fingerprint_folder(folder: str | os.PathLike[str]) -> str:
    """``sha256`` over a folder's files: relative names and contents (hex).

    Hidden files and ``README.md`` are left out (a model card edit changes nothing that
    scores). An empty folder has the fingerprint of no files.
    """
    root = Path(folder)
    digest = hashlib.sha256()
    for file in _listed(root):
        digest.update(file.relative_to(root).as_posix().encode() + b"\0")
        digest.update(fingerprint_file(file).encode() + b"\0")
    return digest.hexdigest()
