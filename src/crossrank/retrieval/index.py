"""FAISS index kinds and their settings (``faiss`` is imported only when an index is made)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

from crossrank.errors import InvalidInputError, MissingExtraError

__all__ = ["IndexConfig", "IndexKind", "Metric", "import_faiss"]

IndexKind = Literal["flat", "hnsw", "ivf"]
Metric = Literal["ip", "l2"]

_KINDS = ("flat", "hnsw", "ivf")
_METRICS = ("ip", "l2")


def import_faiss() -> Any:
    """The ``faiss`` module, or :class:`MissingExtraError` naming the install line."""
    try:
        import faiss
    except ImportError as exc:
        package, extra, purpose = "faiss-cpu", "faiss", "Dense retrieval"
        raise MissingExtraError(package, extra, purpose) from exc
    return faiss


def _positive(name: str, value: object, *, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        msg = f"{name} must be a positive integer, got {value!r}"
        raise InvalidInputError(msg)


@dataclass(frozen=True, slots=True)
class IndexConfig:
    """How vectors are indexed and searched.

    Attributes:
        kind: ``"flat"`` (exact search), ``"hnsw"`` (graph, approximate, no training) or
            ``"ivf"`` (inverted lists; trained on the first vectors added).
        metric: ``"ip"`` (inner product; cosine on normalised vectors) or ``"l2"`` (scores are
            negated squared distances, so higher is better either way).
        hnsw_m: HNSW graph degree.
        hnsw_ef_construction: HNSW candidate-list size while building.
        hnsw_ef_search: HNSW candidate-list size while searching (raised to ``top_k`` when
            smaller).
        ivf_nlist: IVF cluster count; ``None`` picks ``4 * sqrt(n)`` (at most ``n``) from the
            first batch of vectors added.
        ivf_nprobe: IVF clusters visited per search.
    """

    kind: IndexKind = "flat"
    metric: Metric = "ip"
    hnsw_m: int = 32
    hnsw_ef_construction: int = 200
    hnsw_ef_search: int = 128
    ivf_nlist: int | None = None
    ivf_nprobe: int = 16

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            msg = f"index must be one of {', '.join(map(repr, _KINDS))}; got {self.kind!r}"
            raise InvalidInputError(msg)
        if self.metric not in _METRICS:
            msg = f"metric must be 'ip' or 'l2'; got {self.metric!r}"
            raise InvalidInputError(msg)
        _positive("hnsw_m", self.hnsw_m)
        _positive("hnsw_ef_construction", self.hnsw_ef_construction)
        _positive("hnsw_ef_search", self.hnsw_ef_search)
        _positive("ivf_nlist", self.ivf_nlist, allow_none=True)
        _positive("ivf_nprobe", self.ivf_nprobe)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IndexConfig:
        """Rebuild from :meth:`to_dict`'s output."""
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)

    @property
    def needs_training(self) -> bool:
        """Whether the index must see sample vectors before adding (IVF)."""
        return self.kind == "ivf"

    def nlist_for(self, n_vectors: int) -> int:
        """The IVF cluster count for a first batch of ``n_vectors``."""
        if self.ivf_nlist is not None:
            if self.ivf_nlist > n_vectors:
                msg = (
                    f"ivf_nlist={self.ivf_nlist} needs at least that many vectors to train on, "
                    f"but the first batch holds {n_vectors}; add more documents at once or "
                    "lower ivf_nlist"
                )
                raise InvalidInputError(msg)
            return self.ivf_nlist
        return max(1, min(n_vectors, round(4 * math.sqrt(n_vectors))))

    def build(self, dimension: int, n_first: int) -> Any:
        """A new, empty FAISS index for ``dimension``-sized vectors (IVF still untrained)."""
        faiss = import_faiss()
        metric = faiss.METRIC_INNER_PRODUCT if self.metric == "ip" else faiss.METRIC_L2
        if self.kind == "flat":
            return faiss.IndexFlat(dimension, metric)
        if self.kind == "hnsw":
            index = faiss.IndexHNSWFlat(dimension, self.hnsw_m, metric)
            index.hnsw.efConstruction = self.hnsw_ef_construction
            index.hnsw.efSearch = self.hnsw_ef_search
            return index
        quantizer = faiss.IndexFlat(dimension, metric)
        # faiss's Python wrapper keeps ``quantizer`` alive as long as the IVF index.
        return faiss.IndexIVFFlat(quantizer, dimension, self.nlist_for(n_first), metric)

    def prepare_search(self, index: Any, top_k: int) -> None:
        """Set the search-time knobs of ``index`` for a ``top_k`` search."""
        if self.kind == "hnsw":
            index.hnsw.efSearch = max(self.hnsw_ef_search, top_k)
        elif self.kind == "ivf":
            index.nprobe = min(self.ivf_nprobe, index.nlist)
