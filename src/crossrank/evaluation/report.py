"""The two-stage evaluation report: metrics, latency and throughput per run."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crossrank.errors import DataError, MissingExtraError

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from crossrank.evaluation.runs import Run

__all__ = ["EvaluationReport", "RunReport"]

REPORT_FORMAT = 1


@dataclass(frozen=True, slots=True)
class RunReport:
    """One run's results.

    Attributes:
        name: the first stage (``"dense"``, ``"bm25"`` or ``"hybrid"``), ``"reranked"`` or
            ``"fused"``.
        metrics: metric name → mean over the judged queries.
        latency_p50_ms, latency_p95_ms: per-query latency percentiles in milliseconds
            (retrieval alone for the first-stage run; retrieval plus reranking otherwise).
        pairs_per_second: reranker throughput, ``None`` for the first-stage run.
    """

    name: str
    metrics: dict[str, float]
    latency_p50_ms: float
    latency_p95_ms: float
    pairs_per_second: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary."""
        return {
            "name": self.name,
            "metrics": dict(self.metrics),
            "latency_p50_ms": self.latency_p50_ms,
            "latency_p95_ms": self.latency_p95_ms,
            "pairs_per_second": self.pairs_per_second,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunReport:
        """Rebuild from :meth:`to_dict`'s output."""
        pps = data.get("pairs_per_second")
        return cls(
            name=str(data["name"]),
            metrics={str(k): float(v) for k, v in data["metrics"].items()},
            latency_p50_ms=float(data["latency_p50_ms"]),
            latency_p95_ms=float(data["latency_p95_ms"]),
            pairs_per_second=None if pps is None else float(pps),
        )


@dataclass(frozen=True)
class EvaluationReport:
    """First stage (dense, BM25 or hybrid) vs. reranked vs. fused on one collection split.

    ``first_stage`` names the first-stage run; ``fuse_with`` says which first-stage score
    was fused with the cross-encoder (``"first-stage"``: the hit's own).

    ``runs_data`` holds the ranked runs themselves (not saved in the JSON; export them with
    :meth:`export_runs`).
    """

    collection: str
    split: str
    n_queries: int
    retriever: str
    reranker: str
    top_k: int
    top_n: int
    fusion: str
    alpha: float
    runs: tuple[RunReport, ...]
    truncated_documents: int = 0
    first_stage: str = "dense"
    fuse_with: str = "first-stage"
    runs_data: Mapping[str, Run] = field(default_factory=dict, repr=False, compare=False)

    # -- access -------------------------------------------------------------------------------
    @property
    def metric_names(self) -> list[str]:
        """The metrics every run reports, in table order."""
        return list(self.runs[0].metrics) if self.runs else []

    def __getitem__(self, name: str) -> RunReport:
        for run in self.runs:
            if run.name == name:
                return run
        msg = f"no run named {name!r}; runs: {', '.join(r.name for r in self.runs)}"
        raise KeyError(msg)

    def export_runs(self) -> dict[str, dict[str, dict[str, float]]]:
        """``{run_name: {qid: {doc_id: score}}}`` with rank-derived scores."""
        return {name: run.to_dict() for name, run in self.runs_data.items()}

    # -- serialisation ------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary."""
        return {
            "format": REPORT_FORMAT,
            "collection": self.collection,
            "split": self.split,
            "n_queries": self.n_queries,
            "retriever": self.retriever,
            "reranker": self.reranker,
            "top_k": self.top_k,
            "top_n": self.top_n,
            "fusion": self.fusion,
            "alpha": self.alpha,
            "truncated_documents": self.truncated_documents,
            "first_stage": self.first_stage,
            "fuse_with": self.fuse_with,
            "runs": [run.to_dict() for run in self.runs],
        }

    def to_json(self, *, indent: int = 2) -> str:
        """The report as JSON text."""
        return json.dumps(self.to_dict(), indent=indent)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the report as JSON to ``path`` (folders are created)."""
        file = Path(path)
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(self.to_json() + "\n", encoding="utf-8")
        return file

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EvaluationReport:
        """Rebuild from :meth:`to_dict`'s output."""
        if data.get("format") != REPORT_FORMAT:
            msg = f"unknown report format {data.get('format')!r}; expected {REPORT_FORMAT}"
            raise DataError(msg)
        return cls(
            collection=str(data["collection"]),
            split=str(data["split"]),
            n_queries=int(data["n_queries"]),
            retriever=str(data["retriever"]),
            reranker=str(data["reranker"]),
            top_k=int(data["top_k"]),
            top_n=int(data["top_n"]),
            fusion=str(data["fusion"]),
            alpha=float(data["alpha"]),
            truncated_documents=int(data.get("truncated_documents", 0)),
            first_stage=str(data.get("first_stage", "dense")),
            fuse_with=str(data.get("fuse_with", "first-stage")),
            runs=tuple(RunReport.from_dict(r) for r in data["runs"]),
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> EvaluationReport:
        """Read a report written by :meth:`save`."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            msg = f"{path} is not valid JSON ({exc.msg})"
            raise DataError(msg) from None
        return cls.from_dict(data)

    # -- display ------------------------------------------------------------------------------
    @property
    def title(self) -> str:
        """A one-line title: collection, split, queries, first stage, reranker and fusion."""
        fusion = f"{self.fusion} alpha={self.alpha:g}" if self.fusion == "weighted" else "rrf"
        if self.fuse_with != "first-stage":
            fusion += f" with the {self.fuse_with} score"
        return (
            f"{self.collection} ({self.split}), {self.n_queries} queries: {self.retriever} "
            f"top-{self.top_k}, {self.reranker} reranks top-{self.top_n}, fusion {fusion}"
        )

    def _rows(self) -> list[list[str]]:
        rows = []
        for run in self.runs:
            pps = "-" if run.pairs_per_second is None else f"{run.pairs_per_second:,.0f}"
            rows.append(
                [run.name]
                + [f"{run.metrics[m]:.4f}" for m in self.metric_names]
                + [f"{run.latency_p50_ms:.1f}", f"{run.latency_p95_ms:.1f}", pps]
            )
        return rows

    def _header(self) -> list[str]:
        return ["run", *self.metric_names, "p50 ms", "p95 ms", "pairs/s"]

    def format_table(self, *, markdown: bool = False) -> str:
        """The report as an aligned plain-text table (or a Markdown table)."""
        header, rows = self._header(), self._rows()
        if markdown:
            lines = ["| " + " | ".join(header) + " |"]
            lines.append("|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|")
            lines += ["| " + " | ".join(row) + " |" for row in rows]
            return "\n".join(lines)
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

        def line(cells: list[str]) -> str:
            first = cells[0].ljust(widths[0])
            rest = [c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)]
            return "  ".join([first, *rest])

        return "\n".join([self.title, line(header), *(line(r) for r in rows)])

    def __str__(self) -> str:
        return self.format_table()

    def rich_table(self) -> Any:
        """The report as a ``rich.table.Table`` (needs ``rich``)."""
        try:
            from rich.table import Table
        except ImportError as exc:
            package, extra, purpose = "rich", "demo", "A rich report table"
            raise MissingExtraError(package, extra, purpose) from exc
        table = Table(title=self.title)
        for i, name in enumerate(self._header()):
            table.add_column(name, justify="left" if i == 0 else "right")
        for row in self._rows():
            table.add_row(*row)
        return table

    def plot(self, *, ax: Axes | None = None, metrics: list[str] | None = None) -> Figure:
        """A grouped bar chart of the metrics per run (see :func:`plot_report`)."""
        from crossrank.evaluation.plot import plot_report

        return plot_report(self, ax=ax, metrics=metrics)
