"""Ranked runs saved on disk, and their metrics against a collection's judgments.

Two file forms are read (the output folder of ``crossrank rerank-batch`` is read by
:func:`crossrank.jobs.ranked_run`):

- JSON: ``{qid: {doc_id: score}}`` (one run; ir-measures, ranx and pytrec_eval write it) or
  ``{run_name: {qid: {doc_id: score}}}`` (several; ``crossrank eval --runs-out`` writes it);
- TREC run text: ``qid Q0 doc_id rank score tag`` per line (any other extension).

Documents are ranked by score, highest first, ties broken by document id as trec_eval does.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crossrank.errors import DataError, InvalidInputError
from crossrank.evaluation.metrics import compute_metrics, metric_names
from crossrank.evaluation.runs import Run

__all__ = ["ScoredRun", "read_run_file", "run_from_scores", "score_run"]


@dataclass(frozen=True, slots=True)
class ScoredRun:
    """One run's metrics on a collection split.

    Attributes:
        name: the run's name.
        metrics: metric name → mean over **all** judged queries of the split; a judged query
            the run does not rank counts as 0 (as ``trec_eval -c`` does).
        n_judged: judged queries in the split.
        n_ranked: judged queries the run ranks.
        n_unjudged: queries the run ranks that the split does not judge (ignored).
    """

    name: str
    metrics: dict[str, float]
    n_judged: int
    n_ranked: int
    n_unjudged: int

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary."""
        return {
            "name": self.name,
            "metrics": dict(self.metrics),
            "n_judged": self.n_judged,
            "n_ranked": self.n_ranked,
            "n_unjudged": self.n_unjudged,
        }


def run_from_scores(name: str, scores: Mapping[str, Mapping[str, float]]) -> Run:
    """A :class:`Run` from ``{qid: {doc_id: score}}``: highest score first, ties by doc id."""
    rankings: dict[str, tuple[str, ...]] = {}
    ordered: dict[str, tuple[float, ...]] = {}
    for qid, docs in scores.items():
        if not isinstance(docs, Mapping):
            msg = f"run {name!r}: query {qid!r} maps to {type(docs).__name__}, not {{doc: score}}"
            raise DataError(msg)
        items = []
        for doc, value in docs.items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                msg = (
                    f"run {name!r}: query {qid!r}, document {doc!r}: score {value!r} "
                    "is not a number"
                )
                raise DataError(msg)
            items.append((str(doc), float(value)))
        items.sort(key=lambda item: (-item[1], item[0]))
        rankings[str(qid)] = tuple(doc for doc, _ in items)
        ordered[str(qid)] = tuple(score for _, score in items)
    return Run(name=name, rankings=rankings, scores=ordered)


def _read_json(path: Path) -> dict[str, Run]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        msg = f"cannot read the run file {path}: {exc}"
        raise DataError(msg) from exc
    if not isinstance(data, dict) or not data:
        msg = f"{path} holds no run: expected {{qid: {{doc: score}}}} or {{run: {{qid: {{...}}}}}}"
        raise DataError(msg)
    # {run: {qid: {doc: score}}} has mappings two levels down; {qid: {doc: score}} numbers.
    first = next(iter(data.values()))
    nested = isinstance(first, dict) and any(isinstance(v, dict) for v in first.values())
    if nested:
        return {str(name): run_from_scores(str(name), run) for name, run in data.items()}
    return {path.stem: run_from_scores(path.stem, data)}


def _read_trec(path: Path) -> dict[str, Run]:
    scores: dict[str, dict[str, float]] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        msg = f"cannot read the run file {path}: {exc}"
        raise DataError(msg) from exc
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 6:
            msg = (
                f"{path}:{number}: a TREC run line has 6 fields (qid Q0 doc rank score tag), "
                f"found {len(fields)}; JSON runs need a .json extension"
            )
            raise DataError(msg)
        qid, _, doc, _, score, _ = fields
        try:
            value = float(score)
        except ValueError as exc:
            msg = f"{path}:{number}: score {score!r} is not a number"
            raise DataError(msg) from exc
        docs = scores.setdefault(qid, {})
        if doc in docs:
            msg = f"{path}:{number}: query {qid!r} lists document {doc!r} twice"
            raise DataError(msg)
        docs[doc] = value
    if not scores:
        msg = f"{path} holds no run lines"
        raise DataError(msg)
    return {path.stem: run_from_scores(path.stem, scores)}


def read_run_file(path: str | os.PathLike[str]) -> dict[str, Run]:
    """The runs in a JSON or TREC run file, by name (a single run is named after the file)."""
    file = Path(path)
    if not file.is_file():
        msg = f"no run file at {file}"
        raise InvalidInputError(msg)
    return _read_json(file) if file.suffix.lower() == ".json" else _read_trec(file)


def score_run(run: Run, qrels: Mapping[str, Mapping[str, int]], *, recall_k: int) -> ScoredRun:
    """NDCG@10, MRR@10, Hit@1 and Recall@``recall_k`` of ``run`` over every judged query."""
    if not qrels:
        msg = "qrels is empty; pass the judgments of at least one query"
        raise InvalidInputError(msg)
    ranked = {qid: run.rankings[qid] for qid in qrels if run.rankings.get(qid)}
    names = metric_names(recall_k)
    totals = dict.fromkeys(names, 0.0)
    if ranked:
        per_query = compute_metrics(
            {qid: qrels[qid] for qid in ranked}, ranked, recall_k=recall_k
        ).per_query
        for values in per_query.values():
            for metric in names:
                totals[metric] += values[metric]
    return ScoredRun(
        name=run.name,
        metrics={metric: total / len(qrels) for metric, total in totals.items()},
        n_judged=len(qrels),
        n_ranked=len(ranked),
        n_unjudged=sum(qid not in qrels for qid in run.rankings),
    )
