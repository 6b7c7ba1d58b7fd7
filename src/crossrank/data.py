"""Loading BEIR-layout collections into plain typed objects.

A collection folder holds ``corpus.jsonl`` (``{"_id", "title", "text"}`` a line),
``queries.jsonl`` (``{"_id", "text"}``) and ``qrels/<split>.tsv`` (``query-id``, ``corpus-id``,
``score`` separated by tabs, with an optional header). The loader tolerates CRLF line endings,
a UTF-8 byte-order mark, blank lines, missing titles, gzip-compressed JSON lines
(``corpus.jsonl.gz``) and graded labels (``score > 0`` means relevant); anything else that is
wrong raises :class:`~crossrank.errors.DataError` naming the file and line.
"""

from __future__ import annotations

import gzip
import io
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from crossrank.errors import DataError, InvalidInputError

__all__ = [
    "Collection",
    "Document",
    "Query",
    "load_beir",
    "load_corpus",
    "load_qrels",
    "load_queries",
    "resolve_collection",
]

Qrels = dict[str, dict[str, int]]

_QRELS_HEADER = ("query-id", "corpus-id", "score")


@dataclass(frozen=True, slots=True)
class Document:
    """One corpus entry; ``title`` is ``""`` when the file has none."""

    id: str
    text: str
    title: str = ""

    @property
    def full_text(self) -> str:
        """Title and text joined by a space, as BEIR and MTEB encode documents."""
        return f"{self.title} {self.text}".strip()


@dataclass(frozen=True, slots=True)
class Query:
    """One query."""

    id: str
    text: str


@dataclass(frozen=True)
class Collection:
    """A corpus, its queries and one split's relevance judgments.

    Attributes:
        name: the collection folder's name.
        path: the collection folder.
        split: which ``qrels/<split>.tsv`` was loaded.
        corpus: documents by id, in file order.
        queries: every query of ``queries.jsonl`` by id, in file order (some may have no
            judgments in this split).
        qrels: ``{query_id: {doc_id: label}}``; labels are graded, ``> 0`` means relevant.
        corpus_file: the corpus file read (``None`` for a collection built in memory).
    """

    name: str
    path: Path
    split: str
    corpus: Mapping[str, Document]
    queries: Mapping[str, Query]
    qrels: Mapping[str, Mapping[str, int]]
    corpus_file: Path | None = None

    def __repr__(self) -> str:
        return (
            f"Collection(name={self.name!r}, split={self.split!r}, docs={len(self.corpus)}, "
            f"judged_queries={len(self.qrels)})"
        )

    def judged_queries(self, limit: int | None = None) -> list[Query]:
        """The queries that have judgments in this split, in ``queries.jsonl`` order.

        ``limit`` keeps the first ``limit`` of them (for quick runs).
        """
        if limit is not None and (isinstance(limit, bool) or limit < 1):
            msg = f"limit must be a positive integer or None, got {limit!r}"
            raise InvalidInputError(msg)
        judged = [q for qid, q in self.queries.items() if qid in self.qrels]
        return judged if limit is None else judged[:limit]

    def judged_first_ids(self, queries: Sequence[Query], size: int) -> list[str]:
        """Document ids for a small corpus that can still be evaluated: every document judged
        for ``queries`` (whatever ``size`` says), then the rest of the corpus in file order
        until ``size`` ids are reached."""
        wanted = dict.fromkeys(d for q in queries for d in self.qrels.get(q.id, {}))
        for doc_id in self.corpus:
            if len(wanted) >= size:
                break
            wanted.setdefault(doc_id)
        return list(wanted)

    def relevant(self, query_id: str) -> dict[str, int]:
        """The documents judged relevant (label > 0) for ``query_id`` with their labels."""
        return {doc: label for doc, label in self.qrels.get(query_id, {}).items() if label > 0}


def _open_text(path: Path) -> IO[str]:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig")
    # Text mode with universal newlines turns CRLF into LF; utf-8-sig drops a BOM.
    return path.open(encoding="utf-8-sig")


def _find(folder: Path, name: str) -> Path:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    msg = f"{folder / name} not found; a BEIR collection folder needs {name} (or {name}.gz)"
    raise DataError(msg)


def _iter_json_lines(path: Path) -> Iterator[tuple[int, dict[str, object]]]:
    """``(line_number, object)`` for each non-blank line, 1-based."""
    try:
        handle = _open_text(path)
    except OSError as exc:
        msg = f"cannot read {path}: {exc}"
        raise DataError(msg) from exc
    with handle:
        try:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    msg = f"{path}, line {number}: not valid JSON ({exc.msg}); fix or remove it"
                    raise DataError(msg) from None
                if not isinstance(obj, dict):
                    msg = f"{path}, line {number}: expected a JSON object, got {type(obj).__name__}"
                    raise DataError(msg)
                yield number, obj
        except (UnicodeDecodeError, OSError, EOFError) as exc:
            msg = f"cannot read {path}: {exc}; the file must be UTF-8 JSON lines"
            raise DataError(msg) from exc


def _field(obj: Mapping[str, object], key: str, path: Path, number: int, *, required: bool) -> str:
    value = obj.get(key)
    if value is None:
        if required:
            msg = f'{path}, line {number}: missing "{key}"'
            raise DataError(msg)
        return ""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        msg = f'{path}, line {number}: "{key}" must be a string, got {type(value).__name__}'
        raise DataError(msg)
    return str(value)


def load_corpus(path: str | os.PathLike[str]) -> dict[str, Document]:
    """Read a ``corpus.jsonl`` (or ``.jsonl.gz``) file into documents by id."""
    file = Path(path)
    corpus: dict[str, Document] = {}
    for number, obj in _iter_json_lines(file):
        doc_id = _field(obj, "_id", file, number, required=True)
        if doc_id in corpus:
            msg = f"{file}, line {number}: document id {doc_id!r} appears twice; ids must be unique"
            raise DataError(msg)
        corpus[doc_id] = Document(
            id=doc_id,
            text=_field(obj, "text", file, number, required=True),
            title=_field(obj, "title", file, number, required=False),
        )
    return corpus


def load_queries(path: str | os.PathLike[str]) -> dict[str, Query]:
    """Read a ``queries.jsonl`` (or ``.jsonl.gz``) file into queries by id."""
    file = Path(path)
    queries: dict[str, Query] = {}
    for number, obj in _iter_json_lines(file):
        query_id = _field(obj, "_id", file, number, required=True)
        if query_id in queries:
            msg = f"{file}, line {number}: query id {query_id!r} appears twice; ids must be unique"
            raise DataError(msg)
        queries[query_id] = Query(
            id=query_id, text=_field(obj, "text", file, number, required=True)
        )
    return queries


def _parse_label(raw: str, path: Path, number: int) -> int:
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not value.is_integer():
        msg = f"{path}, line {number}: relevance label {raw!r} is not an integer"
        raise DataError(msg)
    return int(value)


def load_qrels(path: str | os.PathLike[str]) -> Qrels:
    """Read a BEIR ``qrels/<split>.tsv`` file: ``{query_id: {doc_id: label}}``.

    Columns are separated by tabs (whitespace when a line has none); a first line
    ``query-id corpus-id score`` is a header and skipped. A pair listed twice must carry the
    same label.
    """
    file = Path(path)
    if not file.is_file():
        msg = f"{file} not found; pass a split that has a qrels file"
        raise DataError(msg)
    qrels: Qrels = {}
    try:
        with _open_text(file) as handle:
            for number, line in enumerate(handle, start=1):
                text = line.strip()
                if not text:
                    continue
                parts = text.split("\t") if "\t" in text else text.split()
                parts = [p.strip() for p in parts]
                if number == 1 and tuple(p.lower() for p in parts) == _QRELS_HEADER:
                    continue
                if len(parts) != 3 or not parts[0] or not parts[1]:
                    msg = (
                        f"{file}, line {number}: expected 3 columns "
                        f"(query-id, corpus-id, score), got {len(parts)}: {text[:80]!r}"
                    )
                    raise DataError(msg)
                query_id, doc_id, raw = parts
                label = _parse_label(raw, file, number)
                judged = qrels.setdefault(query_id, {})
                if judged.get(doc_id, label) != label:
                    msg = (
                        f"{file}, line {number}: ({query_id!r}, {doc_id!r}) was already judged "
                        f"{judged[doc_id]}, now {label}; keep one label per pair"
                    )
                    raise DataError(msg)
                judged[doc_id] = label
    except (UnicodeDecodeError, OSError) as exc:
        msg = f"cannot read {file}: {exc}"
        raise DataError(msg) from exc
    return qrels


def _check_references(qrels: Qrels, corpus: Mapping[str, Document], qrels_path: Path) -> None:
    unknown = sorted({doc for judged in qrels.values() for doc in judged if doc not in corpus})
    if unknown:
        shown = ", ".join(map(repr, unknown[:5])) + (" ..." if len(unknown) > 5 else "")
        msg = (
            f"{qrels_path} names {len(unknown)} document(s) that are not in the corpus: "
            f"{shown}; the qrels and corpus.jsonl must come from the same collection"
        )
        raise DataError(msg)


def resolve_collection(data: str | os.PathLike[str]) -> Path:
    """A collection folder from a path, or from a name under :func:`shared_data_dir`."""
    from crossrank.paths import shared_data_dir

    path = Path(data).expanduser()
    if path.is_dir():
        return path
    named = shared_data_dir() / str(data)
    if not path.is_absolute() and named.is_dir():
        return named
    root = shared_data_dir()
    available = (
        sorted(p.name for p in root.iterdir() if (p / "qrels").is_dir()) if root.is_dir() else []
    )
    hint = f"; collections in {root}: {', '.join(available)}" if available else ""
    msg = f"collection {str(data)!r} not found: pass a BEIR folder or a collection name{hint}"
    raise DataError(msg)


def load_beir(data: str | os.PathLike[str], split: str = "test") -> Collection:
    """Load a BEIR collection folder (or a collection name under the shared data folder).

    Raises:
        DataError: a file is missing or malformed (the message names file and line), the
            split has no qrels file, or the qrels name unknown documents or queries.
    """
    folder = resolve_collection(data)
    qrels_path = folder / "qrels" / f"{split}.tsv"
    if not qrels_path.is_file():
        splits = sorted(p.stem for p in (folder / "qrels").glob("*.tsv"))
        have = f"; available splits: {', '.join(splits)}" if splits else ""
        msg = f"{qrels_path} not found: split {split!r} has no qrels file{have}"
        raise DataError(msg)
    corpus_file = _find(folder, "corpus.jsonl")
    corpus = load_corpus(corpus_file)
    queries = load_queries(_find(folder, "queries.jsonl"))
    qrels = load_qrels(qrels_path)
    _check_references(qrels, corpus, qrels_path)
    missing = sorted(q for q in qrels if q not in queries)
    if missing:
        shown = ", ".join(map(repr, missing[:5])) + (" ..." if len(missing) > 5 else "")
        msg = (
            f"{qrels_path} judges {len(missing)} query id(s) missing from queries.jsonl: "
            f"{shown}; the qrels and queries.jsonl must come from the same collection"
        )
        raise DataError(msg)
    return Collection(
        name=folder.name,
        path=folder,
        split=split,
        corpus=corpus,
        queries=queries,
        qrels=qrels,
        corpus_file=corpus_file,
    )
