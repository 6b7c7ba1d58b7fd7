"""The on-disk layout of a saved :class:`~crossrank.retrieval.DenseRetriever`.

A folder holds ``index.faiss`` (the FAISS index; absent while empty), ``documents.jsonl``
(``{"id", "text"}`` per vector, in index order) and ``retriever.json`` (format version, the
embedding model's identity, the index settings, normalisation, dimension and count). The
metadata file is written last, so a folder that has it is complete.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crossrank.errors import DataError
from crossrank.retrieval.index import import_faiss

__all__ = ["FORMAT_VERSION", "SavedRetriever", "is_saved_retriever", "read_saved", "write_saved"]

FORMAT_VERSION = 1
META, INDEX, DOCS = "retriever.json", "index.faiss", "documents.jsonl"


@dataclass(frozen=True, slots=True)
class SavedRetriever:
    meta: dict[str, Any]
    index: Any
    ids: list[str]
    texts: list[str]


def is_saved_retriever(folder: str | os.PathLike[str]) -> bool:
    """Whether ``folder`` holds a complete saved retriever."""
    return (Path(folder) / META).is_file()


def write_saved(
    folder: Path, meta: dict[str, Any], index: Any, ids: Sequence[str], texts: Sequence[str]
) -> None:
    """Write a retriever's files into ``folder`` (the caller stages and renames it)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / META).unlink(missing_ok=True)
    if index is not None:
        import_faiss().write_index(index, str(folder / f"{INDEX}.tmp"))
        os.replace(folder / f"{INDEX}.tmp", folder / INDEX)
    else:
        (folder / INDEX).unlink(missing_ok=True)
    with (folder / f"{DOCS}.tmp").open("w", encoding="utf-8") as handle:
        for doc_id, text in zip(ids, texts, strict=True):
            handle.write(json.dumps({"id": doc_id, "text": text}, ensure_ascii=False) + "\n")
    os.replace(folder / f"{DOCS}.tmp", folder / DOCS)
    payload = {"format": FORMAT_VERSION, **meta}
    (folder / f"{META}.tmp").write_text(json.dumps(payload, indent=2), encoding="utf-8")
    os.replace(folder / f"{META}.tmp", folder / META)


def read_meta(folder: Path) -> dict[str, Any]:
    path = folder / META
    if not path.is_file():
        msg = f"{path} not found; {folder} does not hold a saved DenseRetriever"
        raise DataError(msg)
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        msg = f"{path} is not valid JSON ({exc.msg}); save the retriever again"
        raise DataError(msg) from None
    except UnicodeDecodeError:
        msg = f"{path} is not valid UTF-8; save the retriever again"
        raise DataError(msg) from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_VERSION:
        msg = f"{path} has an unknown format; save the retriever again with this version"
        raise DataError(msg)
    return meta


def _read_documents(path: Path) -> tuple[list[str], list[str]]:
    if not path.is_file():
        msg = f"{path} not found; save the retriever again"
        raise DataError(msg)
    ids: list[str] = []
    texts: list[str] = []
    with path.open(encoding="utf-8", errors="strict") as handle:
        try:
            lines = list(handle)
        except UnicodeDecodeError:
            msg = f"{path} is not valid UTF-8; save the retriever again"
            raise DataError(msg) from None
        for number, line in enumerate(lines, start=1):
            try:
                record = json.loads(line)
                ids.append(str(record["id"]))
                texts.append(str(record["text"]))
            except (json.JSONDecodeError, KeyError, TypeError):
                msg = f"{path}, line {number}: not a saved document record"
                raise DataError(msg) from None
    return ids, texts


def read_saved(folder: Path, meta: dict[str, Any]) -> SavedRetriever:
    """The index and documents of a saved retriever whose metadata is ``meta``."""
    ids, texts = _read_documents(folder / DOCS)
    count = int(meta.get("count", -1))
    index = None
    if count > 0:
        if not (folder / INDEX).is_file():
            msg = f"{folder / INDEX} is missing; save the retriever again"
            raise DataError(msg)
        index = import_faiss().read_index(str(folder / INDEX))
    ntotal = 0 if index is None else int(index.ntotal)
    if len(set(ids)) != len(ids):
        msg = f"{folder / DOCS} repeats a document id; save the retriever again"
        raise DataError(msg)
    dimension = meta.get("dimension")
    if index is not None and dimension != int(index.d):
        msg = (
            f"{folder} is inconsistent: its metadata says {dimension}-dimensional vectors, "
            f"the index holds {int(index.d)}-dimensional ones; save the retriever again"
        )
        raise DataError(msg)
    if not count == len(ids) == ntotal:
        msg = (
            f"{folder} is inconsistent: its metadata says {count} documents, {DOCS} holds "
            f"{len(ids)} and the index {ntotal}; save the retriever again"
        )
        raise DataError(msg)
    return SavedRetriever(meta=meta, index=index, ids=ids, texts=texts)
