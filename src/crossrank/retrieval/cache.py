"""A corpus index built once per (collection, embedding model, index settings) and reused."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from crossrank.errors import DataError
from crossrank.retrieval.dense import DenseRetriever
from crossrank.retrieval.identity import ModelIdentity, model_identity
from crossrank.retrieval.index import IndexConfig
from crossrank.retrieval.store import FORMAT_VERSION, is_saved_retriever

if TYPE_CHECKING:
    from crossrank.data import Collection

__all__ = ["cached_retriever", "index_cache_dir"]

logger = logging.getLogger(__name__)


def _corpus_key(collection: Collection) -> dict[str, object]:
    file = collection.corpus_file
    if file is not None and file.is_file():
        stat = file.stat()
        return {"path": str(file.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    digest = hashlib.sha256()
    for doc in collection.corpus.values():
        digest.update(json.dumps([doc.id, doc.title, doc.text]).encode())
    return {"content": digest.hexdigest()}


def index_cache_dir(
    collection: Collection,
    identity: ModelIdentity,
    config: IndexConfig,
    *,
    normalize: bool = True,
    cache_root: str | os.PathLike[str] | None = None,
) -> Path:
    """The folder under ``<cache>/indexes`` for this corpus, model and index settings.

    The key covers the corpus file's path, size and modification time (its content for an
    in-memory collection), the model's fingerprint, the index settings and normalisation.
    """
    from crossrank.paths import cache_dir

    payload = {
        "format": FORMAT_VERSION,
        "corpus": _corpus_key(collection),
        "model": identity.fingerprint,
        "index": config.to_dict(),
        "normalize": normalize,
    }
    key = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]
    model = re.sub(r"[^A-Za-z0-9._-]+", "_", identity.name.rsplit("/", 1)[-1])
    name = f"{collection.name}-{model}-{config.kind}-{key}"
    root = Path(cache_root) if cache_root is not None else cache_dir()
    return root / "indexes" / name


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
    """A retriever over ``collection``'s corpus, and whether it came from the cache.

    The first call encodes the corpus and saves the index under :func:`index_cache_dir`;
    later calls with the same corpus, model and settings load it instead.
    """
    config = config or IndexConfig()
    identity = model_identity(model)
    folder = index_cache_dir(
        collection, identity, config, normalize=normalize, cache_root=cache_root
    )
    if is_saved_retriever(folder):
        try:
            retriever = DenseRetriever.load(
                folder,
                identity.source,
                device=device,
                batch_size=batch_size,
                show_progress=show_progress,
            )
        except DataError as exc:
            logger.warning("cached index %s is unreadable (%s); rebuilding it", folder, exc)
        else:
            logger.info("reusing the cached index %s (%d documents)", folder, len(retriever))
            return retriever, True
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
    staging = folder.with_name(f"{folder.name}.tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    retriever.save(staging)
    shutil.rmtree(folder, ignore_errors=True)
    try:
        os.replace(staging, folder)
    except OSError:
        # Another process saved the same index meanwhile; theirs is as good as ours.
        shutil.rmtree(staging, ignore_errors=True)
    logger.info("saved the index to %s", folder)
    return retriever, False
