"""Distributed batch reranking on Ray Data: candidate lists in, ranked Parquet out.

:func:`rerank_batch` plans the input into shards of ``batch_rows`` queries
(:mod:`crossrank.jobs.candidates`), skips the shards whose part file already exists when
resuming, and hands the rest to ``Dataset.map_batches`` with a callable class: a pool of
``workers`` Ray actors, each holding one :class:`crossrank.Reranker` (loaded once per actor)
that reads its shard, reranks it in one ``rerank_many`` pass and writes the shard's part file
atomically. A worker that dies is restarted by Ray and its shard run again; a shard written
twice is the same file, so the output has no duplicated and no missing rows.

On a cluster, ``input`` and ``output`` must be paths every node reads and writes (a shared
file system), and crossrank must be installed on every node.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crossrank.errors import InvalidInputError, MissingExtraError
from crossrank.jobs.candidates import (
    Shard,
    finished_shards,
    input_files,
    plan_shards,
    ranked_table,
    read_shard,
    write_part,
)
from crossrank.jobs.output import SUCCESS, check_resumable, describe_inputs, save_manifest
from crossrank.ranking.results import RankOptions

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from crossrank.types import RankArgs

__all__ = ["BatchJobReport", "ShardReranker", "rerank_batch"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchJobReport:
    """What a :func:`rerank_batch` call did.

    Attributes:
        output: the output folder.
        n_shards: shards of the whole job.
        shards_run: shards reranked by this call.
        shards_skipped: shards already done (``resume=True``) and not run again.
        rows / pairs: queries and (query, candidate) pairs reranked by this call.
        seconds: wall time of the Ray pipeline (workers' start-up included).
        worker_seconds: time the workers spent on shards (read, rerank, write), summed.
    """

    output: Path
    n_shards: int
    shards_run: int
    shards_skipped: int
    rows: int
    pairs: int
    seconds: float
    worker_seconds: float = 0.0

    @property
    def pairs_per_second(self) -> float:
        """Pairs reranked per second of wall time (0 when nothing ran)."""
        return self.pairs / self.seconds if self.seconds > 0 else 0.0


class ShardReranker:
    """The ``map_batches`` callable class: one engine per Ray actor.

    Each input row names a shard (``{"shard": Shard.to_json()}``); the actor reads it, reranks
    its queries in one ``rerank_many`` pass, writes ``part-NNNNNN.parquet`` and returns one
    row of statistics per shard.
    """

    def __init__(
        self,
        model: str | None,
        reranker_kwargs: Mapping[str, Any],
        options: Mapping[str, Any],
        output: str,
        num_threads: int | None = None,
    ) -> None:
        from crossrank.engine.reranker import Reranker

        if num_threads:
            import torch

            torch.set_num_threads(num_threads)
        self.reranker = Reranker(model, progress_threshold=None, **reranker_kwargs)
        self.options = RankOptions.parse(dict(options))  # type: ignore[arg-type]
        self.output = output

    def __call__(self, batch: Mapping[str, Any]) -> dict[str, list[Any]]:
        stats: dict[str, list[Any]] = {k: [] for k in ("index", "rows", "pairs", "seconds", "pid")}
        opts = self.options
        for spec in batch["shard"]:
            shard = Shard.from_json(str(spec))
            started = time.perf_counter()
            candidates = read_shard(shard)
            results = self.reranker.rerank_many(
                candidates.queries,
                candidates.texts,
                retrieval_scores=candidates.retrieval_scores,
                top_n=opts.top_n,
                fusion=opts.fusion,
                alpha=opts.alpha,
                min_score=opts.min_score,
            )
            write_part(self.output, shard.index, ranked_table(candidates, results))
            stats["index"].append(shard.index)
            stats["rows"].append(len(candidates.queries))
            stats["pairs"].append(candidates.n_pairs)
            stats["seconds"].append(time.perf_counter() - started)
            stats["pid"].append(os.getpid())
        return stats


def _ray() -> Any:
    try:
        import ray
        import ray.data
    except ImportError as exc:
        package, extra, purpose = "ray", "ray", "distributed batch reranking"
        raise MissingExtraError(package, extra, purpose) from exc
    return ray


def _positive(name: str, value: object, *, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        msg = f"{name} must be a number, got {value!r}"
        raise InvalidInputError(msg)
    if value < 0 or (value == 0 and not allow_zero):
        msg = f"{name} must be {'non-negative' if allow_zero else 'positive'}, got {value!r}"
        raise InvalidInputError(msg)
    return float(value)


def rerank_batch(
    input: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    model: str | os.PathLike[str] | None = None,
    workers: int = 1,
    cpus_per_worker: float = 1.0,
    gpus_per_worker: float = 0.0,
    batch_rows: int = 64,
    resume: bool = False,
    reranker_kwargs: Mapping[str, Any] | None = None,
    show_progress: bool | None = None,
    address: str | None = None,
    num_cpus: int | None = None,
    **options: Unpack[RankArgs],
) -> BatchJobReport:
    """Rerank every query's candidates in ``input`` with a pool of Ray workers.

    Args:
        input: a ``.jsonl`` or ``.parquet`` file of candidate lists, or a folder of them
            (see :mod:`crossrank.jobs.candidates` for the columns).
        output: a folder for ``part-NNNNNN.parquet`` files, ``_job.json`` and ``_SUCCESS``.
        model: the cross-encoder (folder or hub id; ``None``: crossrank's default).
        workers: Ray actors, each with its own engine (``concurrency`` of the map).
        cpus_per_worker / gpus_per_worker: Ray resources per actor; with GPUs the engine runs
            on the actor's CUDA device (fractions share a GPU between actors).
        batch_rows: queries per shard: one ``rerank_many`` call, one part file, and the unit
            of resuming.
        resume: continue a job whose output folder already holds some shards (same input,
            shard size, model and options); finished shards are not run again.
        reranker_kwargs: more :class:`crossrank.Reranker` settings (``max_length``,
            ``overflow``, ``dtype``, ``backend``...); JSON values, recorded in the manifest.
        show_progress: a progress bar over shards (``None``: on a terminal only).
        address / num_cpus: when this process is not connected to Ray yet, the cluster to
            join (``None``: ``$RAY_ADDRESS``, else a new local instance of ``num_cpus``
            CPUs); Ray is then shut down at the end.
        **options: ranking options of ``rerank_many``: ``top_n``, ``fusion``, ``alpha``,
            ``min_score``.

    The input is planned and the output folder checked before Ray starts, so a wrong
    argument fails at once; Ray starts only when some shard is left to run.
    """
    from tqdm.auto import tqdm

    workers = int(_positive("workers", workers))
    cpus = _positive("cpus_per_worker", cpus_per_worker)
    gpus = _positive("gpus_per_worker", gpus_per_worker, allow_zero=True)
    rank = RankOptions.parse(options)
    engine = dict(reranker_kwargs or {})
    for reserved in ("model", "progress_threshold"):
        if reserved in engine:
            msg = f"reranker_kwargs must not hold {reserved!r}"
            raise InvalidInputError(msg)
    if gpus > 0:
        engine.setdefault("device", "cuda")
    files = input_files(input)
    shards = plan_shards(files, batch_rows)
    folder = Path(output)
    manifest = {
        "inputs": describe_inputs(files),
        "batch_rows": batch_rows,
        "n_shards": len(shards),
        "n_rows": sum(s.n_rows for s in shards),
        "model": None if model is None else str(model),
        "reranker_kwargs": engine,
        "options": {k: getattr(rank, k) for k in ("top_n", "fusion", "alpha", "min_score")},
    }
    check_resumable(folder, manifest, resume=resume)
    save_manifest(folder, manifest)
    for stale in folder.glob(".part-*.tmp"):
        stale.unlink(missing_ok=True)
    done = finished_shards(folder)
    todo = [s for s in shards if s.index not in done]
    skipped = len(shards) - len(todo)
    if skipped:
        logger.info("resuming: %d of %d shards are done, %d to go", skipped, len(shards), len(todo))
    rows = pairs = 0
    busy = 0.0
    started = time.perf_counter()
    if todo:
        ray = _ray()
        owns_ray = not ray.is_initialized()
        if owns_ray:
            init: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.WARNING}
            if address is not None:
                init["address"] = address
            elif not os.environ.get("RAY_ADDRESS"):
                # A new local instance (never one found on this machine), over loopback only.
                init.update(address="local", _node_ip_address="127.0.0.1")
                if num_cpus is not None:
                    init["num_cpus"] = num_cpus
            ray.init(**init)
        try:
            context = ray.data.DataContext.get_current()
            context.enable_progress_bars = False
            context.print_on_execution_start = False
            items = [{"shard": s.to_json()} for s in todo]
            dataset = ray.data.from_items(items, override_num_blocks=len(items))
            threads = max(1, int(cpus)) if gpus == 0 else None
            results = dataset.map_batches(
                ShardReranker,
                fn_constructor_kwargs={
                    "model": None if model is None else str(model),
                    "reranker_kwargs": engine,
                    "options": manifest["options"],
                    "output": str(folder.resolve()),
                    "num_threads": threads,
                },
                batch_size=1,
                compute=ray.data.ActorPoolStrategy(size=workers),
                num_cpus=cpus,
                num_gpus=gpus or None,
            )
            disable = None if show_progress is None else not show_progress
            with tqdm(
                total=len(shards), initial=skipped, unit="shard", desc="reranking", disable=disable
            ) as bar:
                for stat in results.iter_rows():
                    rows += int(stat["rows"])
                    pairs += int(stat["pairs"])
                    busy += float(stat["seconds"])
                    elapsed = time.perf_counter() - started
                    bar.set_postfix(pairs_per_s=f"{pairs / elapsed:,.0f}", refresh=False)
                    bar.update(1)
        finally:
            if owns_ray:
                ray.shutdown()
    seconds = time.perf_counter() - started
    missing = set(range(len(shards))) - finished_shards(folder)
    if not missing:
        (folder / SUCCESS).write_text(f"{len(shards)} shards\n", encoding="utf-8")
    return BatchJobReport(folder, len(shards), len(todo), skipped, rows, pairs, seconds, busy)
