"""A corpus index built once per (collection, embedding model, index settings) and reused.

The cache is safe to share: its key holds the corpus file's content hash
(:func:`crossrank.fingerprint.fingerprint_file`), so an edited corpus is never served a stale
index even when it keeps its size and modification time; a folder that fails to load for any
reason is logged and rebuilt; a failed write (read-only folder, full disk) is logged and the
index built in memory is used; and several processes building the same index wait on one
lock and then share one atomically renamed folder.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from crossrank.fingerprint import fingerprint_file
from crossrank.retrieval.dense import DenseRetriever
from crossrank.retrieval.identity import ModelIdentity, model_identity
from crossrank.retrieval.index import IndexConfig
from crossrank.retrieval.store import FORMAT_VERSION

if TYPE_CHECKING:
    from crossrank.data import Collection
    from crossrank.retrieval.bm25 import BM25Config, BM25Retriever

__all__ = [
    "bm25_cache_dir",
    "cache_folder",
    "cached_bm25",
    "cached_retriever",
    "corpus_key",
    "index_cache_dir",
    "load_or_build",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: What loading a damaged folder can raise (bad JSON or UTF-8, a missing or mistyped
#: field, a truncated FAISS file, a file gone); each means "rebuild it".
LOAD_ERRORS = (OSError, ValueError, LookupError, TypeError, RuntimeError, AttributeError)


def corpus_key(collection: Collection) -> dict[str, object]:
    """What an index over ``collection``'s corpus depends on: the corpus file's content
    hash, or the documents themselves for a collection built in memory."""
    file = collection.corpus_file
    if file is not None and file.is_file():
        return {"sha256": fingerprint_file(file)}
    digest = hashlib.sha256()
    for doc in collection.corpus.values():
        digest.update(json.dumps([doc.id, doc.title, doc.text]).encode())
    return {"content": digest.hexdigest()}


def _safe(text: str, limit: int = 48) -> str:
    """``text`` as one harmless path component: no separators, no leading dots."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", text).lstrip(".")[:limit]
    return cleaned or "_"


def cache_folder(
    kind: str,
    labels: list[str],
    payload: dict[str, object],
    cache_root: str | os.PathLike[str] | None = None,
) -> Path:
    """``<cache>/<kind>/<label>-...-<key>``: readable labels (sanitised, so a collection
    named ``../../x`` stays inside) and a 16-hex key hashed from ``payload``."""
    from crossrank.paths import cache_dir

    key = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]
    name = "-".join([*(_safe(label) for label in labels), key])
    root = Path(cache_root) if cache_root is not None else cache_dir()
    return root / kind / name


def index_cache_dir(
    collection: Collection,
    identity: ModelIdentity,
    config: IndexConfig,
    *,
    normalize: bool = True,
    cache_root: str | os.PathLike[str] | None = None,
) -> Path:
    """The folder under ``<cache>/indexes`` for this corpus, model and index settings.

    The key covers the corpus file's content hash (its documents for an in-memory
    collection), the model's fingerprint, the index settings and normalisation.
    """
    payload = {
        "format": FORMAT_VERSION,
        "corpus": corpus_key(collection),
        "model": identity.fingerprint,
        "index": config.to_dict(),
        "normalize": normalize,
    }
    model = identity.name.rsplit("/", 1)[-1]
    labels = [collection.name, model, config.kind]
    return cache_folder("indexes", labels, payload, cache_root)


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """Hold ``<cache>/locks/<kind>-<name>.lock`` (or go on unlocked, with a warning, where
    it cannot be made)."""
    from filelock import FileLock

    locks = folder.parent.parent / "locks"
    lock = FileLock(str(locks / f"{folder.parent.name}-{folder.name}.lock"))
    try:
        locks.mkdir(parents=True, exist_ok=True)
        folder.parent.mkdir(parents=True, exist_ok=True)
        lock.acquire()
    except OSError as exc:
        logger.warning("cannot lock %s (%s); building without the lock", folder, exc)
        yield
        return
    try:
        yield
    finally:
        lock.release()


def _save(value: T, folder: Path, save: Callable[[T, Path], object]) -> bool:
    staging = folder.with_name(f"{folder.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    try:
        shutil.rmtree(staging, ignore_errors=True)
        save(value, staging)
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(staging, folder)
    except OSError as exc:
        logger.warning(
            "could not save the index to %s (%s); using it from memory, it is built again "
            "next time",
            folder,
            exc,
        )
        shutil.rmtree(staging, ignore_errors=True)
        return False
    return True


def load_or_build(
    folder: Path,
    *,
    load: Callable[[Path], T],
    build: Callable[[], T],
    save: Callable[[T, Path], object],
) -> tuple[T, bool]:
    """The value saved in ``folder`` (and ``True``), or a newly built one (and ``False``)
    that is saved there for next time.

    Any failure to load is logged and answered by a rebuild; a failure to save is logged and
    the built value is returned anyway. Concurrent callers with the same folder (threads or
    processes) wait on one file lock: the first builds, the others load what it saved.
    """
    with _locked(folder):
        if folder.exists():
            try:
                value = load(folder)
            except LOAD_ERRORS as exc:
                logger.warning("the cached index %s is unreadable (%s); rebuilding it", folder, exc)
            else:
                logger.info("reusing the cached index %s", folder)
                return value, True
        value = build()
        if _save(value, folder, save):
            logger.info("saved the index to %s", folder)
        return value, False


def cached_retriever(
    collection: Collection,
    model: str | os.PathLike[str] | None = None,
    *,
    config: IndexConfig | None = None,
    normalize: bool = True,
    device: str = "auto",
    batch_size: int = 64,
    show_progress: bool | None = None,
    cache_root: str | os.PathLike[str] | None = None,
) -> tuple[DenseRetriever, bool]:
    """A dense retriever over ``collection``'s corpus, and whether it came from the cache.

    The first call encodes the corpus and saves the index under :func:`index_cache_dir`;
    later calls with the same corpus content, model and settings load it instead (see
    :func:`load_or_build` for what happens when the folder is damaged or not writable).
    """
    config = config or IndexConfig()
    identity = model_identity(model)
    folder = index_cache_dir(
        collection, identity, config, normalize=normalize, cache_root=cache_root
    )

    def load(path: Path) -> DenseRetriever:
        return DenseRetriever.load(
            path, identity.source, device=device, batch_size=batch_size, show_progress=show_progress
        )

    def build() -> DenseRetriever:
        retriever = DenseRetriever(
            identity.source,
            index=config.kind,
            metric=config.metric,
            normalize=normalize,
            device=device,
            batch_size=batch_size,
            show_progress=show_progress,
            hnsw_m=config.hnsw_m,
            hnsw_ef_construction=config.hnsw_ef_construction,
            hnsw_ef_search=config.hnsw_ef_search,
            ivf_nlist=config.ivf_nlist,
            ivf_nprobe=config.ivf_nprobe,
        )
        logger.info("encoding %d documents of %s", len(collection.corpus), collection.name)
        retriever.add_documents(collection.corpus.values())
        return retriever

    return load_or_build(folder, load=load, build=build, save=DenseRetriever.save)


def bm25_cache_dir(
    collection: Collection,
    config: BM25Config,
    *,
    cache_root: str | os.PathLike[str] | None = None,
) -> Path:
    """The folder under ``<cache>/bm25`` for this corpus content and BM25 settings."""
    from crossrank.retrieval.bm25 import FORMAT_VERSION as BM25_FORMAT

    payload = {"format": BM25_FORMAT, "corpus": corpus_key(collection), "bm25": config.to_dict()}
    return cache_folder("bm25", [collection.name, config.method], payload, cache_root)


def cached_bm25(
    collection: Collection,
    config: BM25Config | None = None,
    *,
    show_progress: bool | None = None,
    cache_root: str | os.PathLike[str] | None = None,
) -> tuple[BM25Retriever, bool]:
    """A BM25 retriever over ``collection``'s corpus, and whether it came from the cache
    (keyed, repaired and shared like :func:`cached_retriever`)."""
    from crossrank.retrieval.bm25 import BM25Config, BM25Retriever

    config = config or BM25Config()
    folder = bm25_cache_dir(collection, config, cache_root=cache_root)

    def load(path: Path) -> BM25Retriever:
        return BM25Retriever.load(path, show_progress=show_progress)

    def build() -> BM25Retriever:
        retriever = BM25Retriever(**config.to_dict(), show_progress=show_progress)
        retriever.add_documents(collection.corpus.values())
        retriever.search("", top_k=1)  # index now, not at the first query
        return retriever

    return load_or_build(folder, load=load, build=build, save=BM25Retriever.save)
