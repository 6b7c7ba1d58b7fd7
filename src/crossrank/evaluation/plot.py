"""A bar chart of an evaluation report's metrics (matplotlib, no pyplot state)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from crossrank.errors import InvalidInputError, MissingExtraError

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["PlottableReport", "plot_report"]


class _PlottableRun(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def metrics(self) -> Mapping[str, float]: ...


class PlottableReport(Protocol):
    """What a chart needs of a report (:class:`~crossrank.EvaluationReport` has it)."""

    @property
    def collection(self) -> str:
        """The collection's name."""
        ...

    @property
    def split(self) -> str:
        """The split evaluated."""
        ...

    @property
    def n_queries(self) -> int:
        """Queries evaluated."""
        ...

    @property
    def metric_names(self) -> list[str]:
        """The metrics every run has."""
        ...

    @property
    def runs(self) -> Sequence[_PlottableRun]:
        """The runs, each with a name and its metrics."""
        ...


def _matplotlib() -> Any:
    try:
        import matplotlib
    except ImportError as exc:
        package, extra, purpose = "matplotlib", "eval", "Plotting a report"
        raise MissingExtraError(package, extra, purpose) from exc
    return matplotlib


def plot_report(
    report: PlottableReport, *, ax: Axes | None = None, metrics: list[str] | None = None
) -> Figure:
    """Draw one group of bars per metric, one bar per run, on ``ax`` or a new figure.

    A new figure is a plain ``matplotlib.figure.Figure`` on the Agg canvas: it touches no
    pyplot state or GUI backend, saves with ``fig.savefig(...)`` and shows in notebooks.
    """
    _matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names = metrics if metrics is not None else report.metric_names
    unknown = [m for m in names if m not in report.metric_names]
    if unknown or not names:
        msg = f"metrics must be among {report.metric_names}; got {names}"
        raise InvalidInputError(msg)
    if ax is None:
        figure = Figure(figsize=(1.6 + 1.5 * len(names), 3.6), layout="constrained")
        FigureCanvasAgg(figure)
        ax = figure.add_subplot()
    else:
        figure = ax.get_figure()  # type: ignore[assignment]
    width = 0.8 / max(1, len(report.runs))
    for i, run in enumerate(report.runs):
        xs = [j + (i - (len(report.runs) - 1) / 2) * width for j in range(len(names))]
        bars = ax.bar(xs, [run.metrics[m] for m in names], width, label=run.name)
        ax.bar_label(bars, fmt="%.3f", fontsize=7, padding=1)
    ax.set_xticks(range(len(names)), names)
    ax.set_ylim(0, 1.08)
    ax.set_ylabel("score")
    ax.set_title(f"{report.collection} ({report.split}), {report.n_queries} queries", fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    return figure
