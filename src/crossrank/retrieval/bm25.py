"""Sparse first-stage retrieval: BM25 over sparse matrices with ``bm25s``.

``bm25s`` (and ``PyStemmer`` for stemming) load when an index is built or loaded, not when
this module is imported.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from crossrank.errors import DataError, InvalidInputError, MissingExtraError
from crossrank.retrieval.hits import SearchHit, check_new_documents, check_strings, check_top_k

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from crossrank.data import Document

__all__ = ["BM25Config", "BM25Method", "BM25Retriever"]

logger = logging.getLogger(__name__)

BM25Method = Literal["lucene", "robertson", "atire", "bm25l", "bm25+"]
_METHODS = ("lucene", "robertson", "atire", "bm25l", "bm25+")
FORMAT_VERSION = 1
META, DOCS, INDEX = "bm25.json", "documents.jsonl", "index"
_PROGRESS_THRESHOLD = 1000


def _import_bm25s() -> Any:
    try:
        import bm25s
    except ImportError as exc:
        package, extra, purpose = "bm25s", "bm25", "BM25 retrieval"
        raise MissingExtraError(package, extra, purpose) from exc
    return bm25s


@dataclass(frozen=True, slots=True)
class BM25Config:
    """How documents are tokenized and scored.

    Attributes:
        method: the BM25 variant (``"lucene"`` is Lucene's and Elasticsearch's).
        k1: term-frequency saturation.
        b: document-length normalisation.
        delta: the ``bm25l`` / ``bm25+`` offset (ignored by the others).
        stemmer: a Snowball language for ``PyStemmer`` (``"english"``), or ``None``.
        stopwords: ``"en"`` (bm25s's English list) or ``None`` to keep every word.
    """

    method: BM25Method = "lucene"
    k1: float = 1.2
    b: float = 0.75
    delta: float = 0.5
    stemmer: str | None = "english"
    stopwords: str | None = "en"

    def __post_init__(self) -> None:
        if self.method not in _METHODS:
            msg = f"method must be one of {', '.join(map(repr, _METHODS))}; got {self.method!r}"
            raise InvalidInputError(msg)
        for name in ("k1", "b", "delta"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                msg = f"{name} must be a non-negative number, got {value!r}"
                raise InvalidInputError(msg)
        if self.b > 1:
            msg = f"b must be between 0 and 1, got {self.b}"
            raise InvalidInputError(msg)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BM25Config:
        """Rebuild from :meth:`to_dict`'s output."""
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


class BM25Retriever:
    """BM25 over the documents' title and text (``bm25s``), with the interface of
    :class:`~crossrank.DenseRetriever`: ``add`` / ``add_documents``, ``search``,
    ``search_batch``, ``len``, ``save`` / ``load``.

    Scores are BM25 (higher is better; 0 means no query term occurs), so only documents
    that share a term with the query are returned. Adding documents after a search
    re-indexes the whole corpus at the next search (BM25's statistics are corpus-wide).

    Args:
        method, k1, b, delta, stemmer, stopwords: see :class:`BM25Config`.
        show_progress: progress bars while tokenizing and indexing; ``None`` shows them from
            1,000 documents on.
    """

    def __init__(
        self,
        *,
        method: BM25Method = "lucene",
        k1: float = 1.2,
        b: float = 0.75,
        delta: float = 0.5,
        stemmer: str | None = "english",
        stopwords: str | None = "en",
        show_progress: bool | None = None,
    ) -> None:
        self._config = BM25Config(method, k1, b, delta, stemmer, stopwords)
        self._show_progress = show_progress
        self._stemmer: Any = None
        self._model: Any = None
        self._ids: list[str] = []
        self._texts: list[str] = []
        self._known: set[str] = set()

    @property
    def config(self) -> BM25Config:
        """The BM25 settings of this index."""
        return self._config

    @property
    def model_name(self) -> str:
        """A readable name: BM25 and its settings."""
        stem = "stemmed" if self._config.stemmer else "unstemmed"
        return f"BM25 ({self._config.method}, k1={self._config.k1:g}, b={self._config.b:g}, {stem})"

    @property
    def ids(self) -> list[str]:
        """Document ids in insertion order (a copy)."""
        return list(self._ids)

    def __len__(self) -> int:
        return len(self._ids)

    def __repr__(self) -> str:
        return f"BM25Retriever(method={self._config.method!r}, documents={len(self)})"

    # -- tokenizing ---------------------------------------------------------------------------
    def _progress(self, n: int) -> bool:
        return n >= _PROGRESS_THRESHOLD if self._show_progress is None else self._show_progress

    def _stemmer_model(self) -> Any:
        if self._config.stemmer is None:
            return None
        if self._stemmer is None:
            try:
                import Stemmer
            except ImportError as exc:
                package, extra, purpose = "PyStemmer", "bm25", "BM25 stemming"
                raise MissingExtraError(package, extra, purpose) from exc
            try:
                self._stemmer = Stemmer.Stemmer(self._config.stemmer)
            except KeyError:
                msg = f"stemmer {self._config.stemmer!r} is not a Snowball language PyStemmer has"
                raise InvalidInputError(msg) from None
        return self._stemmer

    def tokenize(self, texts: Sequence[str], *, progress: bool = False) -> list[list[str]]:
        """The terms BM25 sees for each text (lower-cased, stop words out, stemmed)."""
        bm25s = _import_bm25s()
        tokens = bm25s.tokenize(
            list(texts),
            stopwords=self._config.stopwords or [],
            stemmer=self._stemmer_model(),
            return_ids=False,
            show_progress=progress,
        )
        return [list(t) for t in tokens]

    # -- adding -------------------------------------------------------------------------------
    def add(self, texts: Sequence[str], ids: Sequence[str] | None = None) -> None:
        """Add ``texts`` (ids default to the running position); the index is rebuilt."""
        texts, ids = check_new_documents(texts, ids, self._known, len(self._ids))
        if not texts:
            return
        self._ids.extend(ids)
        self._texts.extend(texts)
        self._known.update(ids)
        self._model = None

    def add_documents(self, documents: Iterable[Document]) -> None:
        """Add :class:`crossrank.data.Document` objects (title and text, keyed by id)."""
        docs = list(documents)
        self.add([d.full_text for d in docs], ids=[d.id for d in docs])

    def _index(self) -> Any:
        if self._model is None and self._ids:
            bm25s = _import_bm25s()
            progress = self._progress(len(self._texts))
            started = time.perf_counter()
            tokens = self.tokenize(self._texts, progress=progress)
            model = bm25s.BM25(
                k1=self._config.k1,
                b=self._config.b,
                delta=self._config.delta,
                method=self._config.method,
            )
            model.index(tokens, show_progress=progress)
            logger.info(
                "indexed %d documents for BM25 in %.1f s",
                len(self._ids),
                time.perf_counter() - started,
            )
            self._model = model
        return self._model

    # -- searching ----------------------------------------------------------------------------
    def _scores(self, query: str) -> npt.NDArray[np.float32]:
        import numpy as np

        model = self._index()
        terms = self.tokenize([query])[0]
        term_ids = model.get_tokens_ids(terms)
        if not term_ids:
            return np.zeros(len(self._ids), dtype=np.float32)
        return np.asarray(model.get_scores_from_ids(term_ids), dtype=np.float32)

    def search(self, query: str, top_k: int = 10) -> list[SearchHit]:
        """The ``top_k`` best-scoring documents for ``query`` (score > 0), best first."""
        if not isinstance(query, str):
            msg = f"query must be a string, got {type(query).__name__}"
            raise InvalidInputError(msg)
        return self.search_batch([query], top_k=top_k)[0]

    def search_batch(self, queries: Sequence[str], top_k: int = 10) -> list[list[SearchHit]]:
        """:meth:`search` for several queries."""
        import numpy as np

        queries = check_strings("queries", queries)
        top_k = check_top_k(top_k)
        if not self._ids:
            return [[] for _ in queries]
        rows = []
        for query in queries:
            scores = self._scores(query)
            k = min(top_k, len(scores))
            head = np.argpartition(-scores, k - 1)[:k]
            order = sorted(head.tolist(), key=lambda p: (-float(scores[p]), p))
            rows.append(
                [
                    SearchHit(id=self._ids[p], text=self._texts[p], score=float(scores[p]))
                    for p in order
                    if scores[p] > 0
                ]
            )
        return rows

    def score_documents(self, query: str, ids: Sequence[str]) -> list[float]:
        """The BM25 score of each of ``ids`` for ``query`` (0 for no shared term)."""
        ids = check_strings("ids", ids)
        positions = {doc_id: p for p, doc_id in enumerate(self._ids)}
        missing = next((i for i in ids if i not in positions), None)
        if missing is not None:
            msg = f"document id {missing!r} is not in the index"
            raise InvalidInputError(msg)
        if not ids:
            return []
        scores = self._scores(query)
        return [float(scores[positions[i]]) for i in ids]

    # -- persistence --------------------------------------------------------------------------
    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write the index, its documents and settings to ``directory``."""
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / META).unlink(missing_ok=True)
        model = self._index()
        if model is not None:
            model.save(str(folder / INDEX), show_progress=False)
        with (folder / DOCS).open("w", encoding="utf-8") as handle:
            for doc_id, text in zip(self._ids, self._texts, strict=True):
                handle.write(json.dumps({"id": doc_id, "text": text}, ensure_ascii=False) + "\n")
        meta = {
            "format": FORMAT_VERSION,
            "config": self._config.to_dict(),
            "count": len(self),
            "bm25s": str(getattr(_import_bm25s(), "__version__", "")),
        }
        (folder / f"{META}.tmp").write_text(json.dumps(meta, indent=2), encoding="utf-8")
        os.replace(folder / f"{META}.tmp", folder / META)
        return folder

    @classmethod
    def load(
        cls, directory: str | os.PathLike[str], *, show_progress: bool | None = None
    ) -> BM25Retriever:
        """Load what :meth:`save` wrote; :class:`DataError` when the folder is incomplete,
        damaged or inconsistent."""
        folder = Path(directory)
        try:
            meta = json.loads((folder / META).read_text(encoding="utf-8"))
            if not isinstance(meta, dict) or meta.get("format") != FORMAT_VERSION:
                msg = f"{folder / META} has an unknown format; save the retriever again"
                raise DataError(msg)
            config = BM25Config.from_dict(meta["config"])
            count = int(meta["count"])
            ids, texts = [], []
            with (folder / DOCS).open(encoding="utf-8") as handle:
                for line in handle:
                    record = json.loads(line)
                    ids.append(str(record["id"]))
                    texts.append(str(record["text"]))
        except (OSError, ValueError, LookupError, TypeError, AttributeError) as exc:
            msg = f"{folder} does not hold a readable BM25 index ({exc}); save it again"
            raise DataError(msg) from None
        retriever = cls(**config.to_dict(), show_progress=show_progress)
        if count:
            try:
                model = _import_bm25s().BM25.load(str(folder / INDEX), show_progress=False)
                num_docs = int(model.scores["num_docs"])
            except (OSError, ValueError, LookupError, TypeError, AttributeError) as exc:
                msg = f"{folder / INDEX} is not a readable bm25s index ({exc}); save it again"
                raise DataError(msg) from None
            retriever._model = model
        else:
            num_docs = 0
        if not count == len(ids) == num_docs or len(set(ids)) != len(ids):
            msg = (
                f"{folder} is inconsistent: {count} documents in its metadata, {len(ids)} "
                f"(unique: {len(set(ids))}) in {DOCS}, {num_docs} in the index; save it again"
            )
            raise DataError(msg)
        retriever._ids, retriever._texts, retriever._known = ids, texts, set(ids)
        return retriever
