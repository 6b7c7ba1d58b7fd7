"""The batch job's output folder: its manifest, and reading the ranked lists back.

``_job.json`` records what the job was asked to do (input files with size and modification
time, shard size, model and options) so that ``--resume`` continues only the same job;
``_SUCCESS`` is written when every shard is done. :func:`read_ranked` returns the rows in input
order; :func:`ranked_run` turns them into the :class:`crossrank.evaluation.Run` that the
evaluation's metrics take.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crossrank.errors import DataError, InvalidInputError
from crossrank.jobs.candidates import _pyarrow, finished_shards, part_path

if TYPE_CHECKING:
    import pyarrow as pa

    from crossrank.evaluation.runs import Run

__all__ = [
    "MANIFEST",
    "SUCCESS",
    "check_resumable",
    "describe_inputs",
    "load_manifest",
    "ranked_run",
    "read_ranked",
    "save_manifest",
]

MANIFEST = "_job.json"
SUCCESS = "_SUCCESS"
_FORMAT = 1


def describe_inputs(files: Sequence[Path]) -> list[dict[str, Any]]:
    """Each input file's resolved path, size and modification time (what resume compares)."""
    described = []
    for file in files:
        stat = file.stat()
        described.append(
            {"path": str(file.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
        )
    return described


def save_manifest(folder: Path, manifest: Mapping[str, Any]) -> None:
    """Write ``_job.json`` atomically (a temporary file renamed into place)."""
    folder.mkdir(parents=True, exist_ok=True)
    staging = folder / f".{MANIFEST}.tmp-{os.getpid()}"
    staging.write_text(json.dumps({"format": _FORMAT, **manifest}, indent=2), encoding="utf-8")
    os.replace(staging, folder / MANIFEST)


def load_manifest(folder: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The folder's ``_job.json``, or ``None`` when it has none."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        return None
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        msg = f"{path} is unreadable ({exc}); remove the output folder and run the job again"
        raise DataError(msg) from None
    return data


def check_resumable(folder: Path, manifest: Mapping[str, Any], *, resume: bool) -> None:
    """Refuse to mix two jobs' output in one folder.

    A folder with parts of a job needs ``resume=True``, and its manifest must equal this
    job's (same inputs unchanged since, same shard size, model and options).
    """
    old = load_manifest(folder)
    parts = finished_shards(folder) if folder.is_dir() else set()
    if old is None:
        if parts:
            msg = f"{folder} holds part files but no {MANIFEST}; choose an empty output folder"
            raise InvalidInputError(msg)
        return
    if not resume:
        msg = (
            f"{folder} already holds the output of a job ({len(parts)} of {old.get('n_shards')} "
            "shards done); pass --resume (resume=True) to continue it or choose another folder"
        )
        raise InvalidInputError(msg)
    new = {"format": _FORMAT, **manifest}
    changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    if changed:
        msg = (
            f"cannot resume into {folder}: the job differs from the one that wrote it "
            f"({', '.join(changed)} changed); use a new output folder"
        )
        raise InvalidInputError(msg)


def read_ranked(folder: str | os.PathLike[str], *, allow_partial: bool = False) -> pa.Table:
    """The job's output rows in input order (one row per query, see
    :mod:`crossrank.jobs.candidates` for the columns).

    Raises :class:`~crossrank.errors.DataError` when shards are missing (a job that has not
    finished; resume it), unless ``allow_partial``.
    """
    pa = _pyarrow()
    root = Path(folder)
    manifest = load_manifest(root)
    if manifest is None:
        msg = f"{root} is not the output of crossrank rerank-batch (no {MANIFEST})"
        raise DataError(msg)
    n_shards = int(manifest["n_shards"])
    done = finished_shards(root)
    missing = sorted(set(range(n_shards)) - done)
    if missing and not allow_partial:
        msg = (
            f"{root} is incomplete: {len(missing)} of {n_shards} shards are missing (first: "
            f"{missing[0]}); run the job again with --resume"
        )
        raise DataError(msg)
    tables = [pa.parquet.read_table(part_path(root, i)) for i in sorted(done) if i < n_shards]
    if not tables:
        from crossrank.jobs.candidates import output_schema

        return output_schema().empty_table()
    table = pa.concat_tables(tables)
    return table


def ranked_run(folder: str | os.PathLike[str], *, name: str = "reranked") -> Run:
    """The job's output as an evaluation :class:`~crossrank.evaluation.Run`.

    ``rankings`` hold each query's doc ids best first, ``scores`` the final scores;
    ``crossrank.evaluation.compute_metrics(qrels, run.rankings)`` scores it, and
    ``run.to_dict()`` is the ``{qid: {doc_id: score}}`` form ir-measures and ranx read.
    """
    from crossrank.evaluation.runs import Run

    table = read_ranked(folder)
    rankings: dict[str, tuple[str, ...]] = {}
    scores: dict[str, tuple[float, ...]] = {}
    for qid, ids, values in zip(
        table.column("query_id").to_pylist(),
        table.column("doc_ids").to_pylist(),
        table.column("scores").to_pylist(),
        strict=True,
    ):
        if qid in rankings:
            msg = f"query {qid!r} appears twice in {folder}; a run holds one ranking per query"
            raise DataError(msg)
        rankings[qid] = tuple(ids)
        scores[qid] = tuple(float(s) for s in values)
    return Run(name=name, rankings=rankings, scores=scores)
