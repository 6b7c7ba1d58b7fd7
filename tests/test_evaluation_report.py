from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from crossrank.errors import DataError, InvalidInputError
from crossrank.evaluation import EvaluationReport, RunReport, plot_report

METRICS = ["NDCG@10", "MRR@10", "Hit@1", "Recall@50"]


def make_report() -> EvaluationReport:
    def run(name: str, base: float, pps: float | None) -> RunReport:
        values = {m: round(base + 0.01 * i, 4) for i, m in enumerate(METRICS)}
        return RunReport(
            name, values, latency_p50_ms=3.25, latency_p95_ms=7.5, pairs_per_second=pps
        )

    return EvaluationReport(
        collection="scifact",
        split="test",
        n_queries=300,
        retriever="sentence-transformers/all-MiniLM-L6-v2",
        reranker="crossrank-starter",
        top_k=50,
        top_n=10,
        fusion="weighted",
        alpha=0.5,
        runs=(run("dense", 0.6, None), run("reranked", 0.5, 1234.5), run("fused", 0.65, 1234.5)),
        truncated_documents=7,
    )


def test_json_roundtrip(tmp_path: Path) -> None:
    report = make_report()
    path = report.save(tmp_path / "out" / "report.json")
    data = json.loads(path.read_text())
    assert data["top_k"] == 50
    assert data["runs"][1]["metrics"]["NDCG@10"] == 0.5
    assert data["runs"][0]["pairs_per_second"] is None
    loaded = EvaluationReport.load(path)
    assert loaded == report
    assert loaded["fused"].metrics == report["fused"].metrics


def test_load_rejects_other_files(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        EvaluationReport.load(tmp_path / "bad.json")
    (tmp_path / "other.json").write_text('{"format": 99}')
    with pytest.raises(DataError, match="unknown report format"):
        EvaluationReport.load(tmp_path / "other.json")


def test_plain_table() -> None:
    text = make_report().format_table()
    lines = text.splitlines()
    assert lines[0].startswith("scifact (test), 300 queries")
    assert "fusion weighted alpha=0.5" in lines[0]
    assert lines[1].split() == ["run", *METRICS, "p50", "ms", "p95", "ms", "pairs/s"]
    assert lines[2].split() == ["dense", "0.6000", "0.6100", "0.6200", "0.6300", "3.2", "7.5", "-"]
    assert lines[3].split()[-1] == "1,234"
    assert len({len(line) for line in lines[1:]}) == 1  # aligned columns
    assert str(make_report()) == text


def test_markdown_table() -> None:
    lines = make_report().format_table(markdown=True).splitlines()
    assert lines[0] == "| run | NDCG@10 | MRR@10 | Hit@1 | Recall@50 | p50 ms | p95 ms | pairs/s |"
    assert lines[1] == "|---|---:|---:|---:|---:|---:|---:|---:|"
    assert lines[4].startswith("| fused | 0.6500 |")


def test_rich_table_renders() -> None:
    from rich.console import Console

    console = Console(record=True, width=140)
    console.print(make_report().rich_table())
    text = console.export_text()
    assert "reranked" in text
    assert "0.6500" in text
    assert "NDCG@10" in text


def test_unknown_run_name() -> None:
    with pytest.raises(KeyError, match="runs: dense, reranked, fused"):
        make_report()["bm25"]


def test_bar_chart(tmp_path: Path) -> None:
    figure = make_report().plot()
    ax = figure.axes[0]
    assert len(ax.patches) == 3 * len(METRICS)
    heights = sorted(round(p.get_height(), 4) for p in ax.patches)
    assert heights == sorted(v for r in make_report().runs for v in r.metrics.values())
    assert [t.get_text() for t in ax.get_xticklabels()] == METRICS
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["dense", "reranked", "fused"]
    figure.savefig(tmp_path / "chart.png")
    assert (tmp_path / "chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bar_chart_on_given_axes_and_metric_subset() -> None:
    from matplotlib.figure import Figure

    figure = Figure()
    ax = figure.add_subplot()
    assert plot_report(make_report(), ax=ax, metrics=["Hit@1"]) is figure
    assert len(ax.patches) == 3
    with pytest.raises(InvalidInputError, match="metrics must be among"):
        plot_report(make_report(), metrics=["MAP"])


def test_plot_leaves_pyplot_alone(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from crossrank.evaluation import EvaluationReport, RunReport\n"
        "run = RunReport('dense', {'NDCG@10': 0.5}, 1.0, 2.0)\n"
        "report = EvaluationReport('c', 's', 1, 'a', 'b', 5, 2, 'rrf', 1.0, (run,))\n"
        "report.plot().savefig(sys.argv[1])\n"
        "print('matplotlib.pyplot' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "c.svg")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "False"
    assert (tmp_path / "c.svg").read_text().lstrip().startswith("<?xml")
