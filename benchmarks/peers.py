"""Every cross-encoder reranking peer on the same model: latency, pairs/s and NDCG@10.

For each SciFact test query the dense top-k candidates (FAISS over all-MiniLM-L6-v2) are
reranked by each system through its own public API, with the same local model folder, in fp32,
at the same ``--max-length``, on the CPU:

- sentence-transformers ``CrossEncoder.predict`` (its default settings: batch_size=32)
- LlamaIndex ``SentenceTransformerRerank`` (llama_index.core.postprocessor)
- LangChain ``CrossEncoderReranker`` + ``HuggingFaceCrossEncoder``
- ``rerankers``' cross-encoder (``Reranker(..., model_type="cross-encoder")``)
- FlagEmbedding ``FlagReranker``
- crossrank ``Reranker`` with ``backend="torch"`` (fp32, and bf16 for CPUs with native bf16),
  ``"onnx"`` (fp32), ``"onnx-int8"`` (dynamic int8), ``"openvino"`` (fp32) and
  ``"openvino-int8"`` (static int8, calibrated on crossrank's built-in text)

Systems take turns on every query (the starting system rotates from query to query), so a
change in machine load affects them alike; the table gives per-query latency p50/p95,
pairs/s (all pairs / all seconds), NDCG@10 of the reranked lists against the SciFact qrels,
and the largest probability difference to ``CrossEncoder.predict`` on the same pairs (how
close a peer's scores are to the reference implementation). A peer that cannot be imported or
cannot load the local folder offline gets a row note instead of numbers.

torch's OpenMP threads spin-wait by default; on a CPU shared with other busy processes that
gives every forward pass a large fixed cost (seconds per pass on 2 oversubscribed cores), which
favours systems that run fewer, larger batches. The header records ``OMP_WAIT_POLICY``; run with
``OMP_WAIT_POLICY=PASSIVE`` to measure without that effect.

    .venv/bin/python benchmarks/peers.py --queries 10 --out reports/peers
    make bench-peers                      # installs benchmarks/requirements-peers.txt first
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shlex
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from _common import Workload, add_workload_args, load_workload, machine

from crossrank.data import load_qrels
from crossrank.evaluation import compute_metrics
from crossrank.evaluation.latency import percentile
from crossrank.paths import shared_starter_dir

REFERENCE = "st"
_SAME_CALL = (REFERENCE, "llamaindex", "langchain")  # all three run CrossEncoder.predict as is
Ranking = tuple[list[int], list[float] | None]  # candidate positions best first; probabilities


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def _order(scores: list[float]) -> list[int]:
    return sorted(range(len(scores)), key=lambda i: (-scores[i], i))


@dataclass
class Peer:
    """One system: ``prepare`` builds its inputs (untimed), ``call`` is timed, ``read`` turns
    its output into candidate positions best first and per-candidate probabilities."""

    key: str
    name: str
    note: str = ""
    load_s: float = math.nan
    skipped: str = ""
    prepare: Callable[[str, list[str]], Any] = lambda q, d: (q, d)
    call: Callable[[Any], Any] = lambda payload: payload
    read: Callable[[Any, int], Ranking] = lambda out, n: (list(range(n)), None)
    times: dict[int, list[float]] = field(default_factory=dict)
    rankings: dict[int, list[Ranking]] = field(default_factory=dict)


# -- the peers ------------------------------------------------------------------------------
def _st(peer: Peer, model: str, max_length: int) -> None:
    from sentence_transformers import CrossEncoder

    encoder = CrossEncoder(
        model, device="cpu", max_length=max_length, model_kwargs={"dtype": torch.float32}
    )
    peer.prepare = lambda q, docs: [(q, d) for d in docs]
    peer.call = encoder.predict
    peer.read = lambda out, n: (_order([float(s) for s in out]), [float(s) for s in out])


def _llamaindex(peer: Peer, model: str, max_length: int) -> None:
    from llama_index.core.postprocessor import SentenceTransformerRerank
    from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

    post = SentenceTransformerRerank(model=model, top_n=1, device="cpu")
    encoder = post._model
    # The class takes no dtype or max_length: it loads the checkpoint's stored dtype (fp16
    # here) and fixes max_length=512. Set both on its CrossEncoder so it runs the same model.
    stored = next(encoder.model.parameters()).dtype
    encoder.model.float()
    encoder.max_seq_length = max_length
    peer.note = f"fp32 and max_length set on its CrossEncoder (class default: {stored}, 512)"

    def prepare(query: str, docs: list[str]) -> Any:
        post.top_n = len(docs)  # a full ranking, for NDCG
        nodes = [NodeWithScore(node=TextNode(text=d, id_=str(i))) for i, d in enumerate(docs)]
        return nodes, QueryBundle(query)

    peer.prepare = prepare
    peer.call = lambda payload: post.postprocess_nodes(payload[0], query_bundle=payload[1])
    peer.read = lambda out, n: _from_positions(
        [int(x.node.id_) for x in out], [float(x.score) for x in out], n
    )


def _langchain(peer: Peer, model: str, max_length: int) -> None:
    from langchain_classic.retrievers.document_compressors import CrossEncoderReranker
    from langchain_community.cross_encoders import HuggingFaceCrossEncoder
    from langchain_core.documents import Document

    encoder = HuggingFaceCrossEncoder(
        model_name=model,
        model_kwargs={
            "device": "cpu",
            "max_length": max_length,
            "model_kwargs": {"dtype": torch.float32},
        },
    )
    compressor = CrossEncoderReranker(model=encoder, top_n=1)
    peer.note = "returns documents only (no scores)"

    def prepare(query: str, docs: list[str]) -> Any:
        compressor.top_n = len(docs)
        return [Document(id=str(i), page_content=d) for i, d in enumerate(docs)], query

    peer.prepare = prepare
    peer.call = lambda payload: compressor.compress_documents(*payload)
    peer.read = lambda out, n: ([int(d.id) for d in out], None)


def _rerankers(peer: Peer, model: str, max_length: int) -> None:
    from rerankers import Reranker as RerankersReranker

    ranker = RerankersReranker(
        model,
        model_type="cross-encoder",
        device="cpu",
        dtype="float32",
        verbose=0,
        # Its tokenizer truncates at model_max_length (128 in this folder's tokenizer config).
        tokenizer_kwargs={"model_max_length": max_length},
    )
    peer.note = "max_length via tokenizer_kwargs={'model_max_length': ...}"
    peer.prepare = lambda q, docs: (q, docs, list(range(len(docs))))
    peer.call = lambda payload: ranker.rank(payload[0], payload[1], doc_ids=payload[2])
    peer.read = lambda out, n: _from_positions(
        [int(r.document.doc_id) for r in out.results],
        [_sigmoid(float(r.score)) for r in out.results],
        n,
    )


def _flag(peer: Peer, model: str, max_length: int) -> None:
    from FlagEmbedding import FlagReranker

    ranker = FlagReranker(model, use_fp16=False, devices="cpu", max_length=max_length)
    # use_fp16=False only means "do not call .half()": transformers 5 loads the stored dtype.
    stored = next(ranker.model.parameters()).dtype
    ranker.model.float()
    peer.note = (
        f"model cast to fp32 after loading (use_fp16=False still loads {stored}); each call "
        "runs its first batch twice (batch-size probe)"
    )
    peer.prepare = lambda q, docs: [(q, d) for d in docs]
    peer.call = ranker.compute_score
    peer.read = lambda out, n: (
        _order([float(s) for s in out]),
        [_sigmoid(float(s)) for s in out],
    )


def _crossrank(backend: str, dtype: str, threads: int) -> Callable[[Peer, str, int], None]:
    def load(peer: Peer, model: str, max_length: int) -> None:
        from crossrank import Reranker

        options: dict[str, Any] = {} if backend == "torch" else {"num_threads": threads}
        reranker = Reranker(
            model, device="cpu", backend=backend, dtype=dtype, max_length=max_length, **options
        )
        budget = reranker._scorer.policy.token_budget
        peer.note = f"token_budget={budget}"
        peer.call = lambda payload: reranker.rerank(*payload)
        peer.read = lambda out, n: _from_positions(
            [r.index for r in out], [r.rerank_score for r in out], n
        )

    return load


def _from_positions(order: list[int], scores: list[float], n: int) -> Ranking:
    """Output listed best first → (positions, probabilities by candidate position)."""
    by_position = [math.nan] * n
    for position, score in zip(order, scores):
        by_position[position] = score
    return order, by_position


PEERS: list[tuple[str, str, Callable[..., None] | None]] = [
    (REFERENCE, "sentence-transformers CrossEncoder.predict", _st),
    ("llamaindex", "LlamaIndex SentenceTransformerRerank", _llamaindex),
    ("langchain", "LangChain CrossEncoderReranker + HuggingFaceCrossEncoder", _langchain),
    ("rerankers", "rerankers cross-encoder (TransformerRanker)", _rerankers),
    ("flag", "FlagEmbedding FlagReranker", _flag),
    ("crossrank-torch", "crossrank Reranker, torch fp32", None),
    ("crossrank-torch-bf16", "crossrank Reranker, torch bf16", None),
    ("crossrank-onnx", "crossrank Reranker, ONNX fp32", None),
    ("crossrank-onnx-int8", "crossrank Reranker, ONNX int8", None),
    ("crossrank-openvino", "crossrank Reranker, OpenVINO fp32", None),
    ("crossrank-openvino-int8", "crossrank Reranker, OpenVINO int8 (static)", None),
    ("crossrank-openvino-bf16", "crossrank Reranker, OpenVINO bf16", None),
    ("crossrank-openvino-int8-bf16", "crossrank Reranker, OpenVINO int8 (static) + bf16", None),
]
_BACKENDS = {  # backend, dtype
    "crossrank-torch": ("torch", "float32"),
    "crossrank-torch-bf16": ("torch", "bfloat16"),
    "crossrank-onnx": ("onnx", "float32"),
    "crossrank-onnx-int8": ("onnx-int8", "float32"),
    "crossrank-openvino": ("openvino", "float32"),
    "crossrank-openvino-int8": ("openvino-int8", "float32"),
    "crossrank-openvino-bf16": ("openvino", "bfloat16"),
    "crossrank-openvino-int8-bf16": ("openvino-int8", "bfloat16"),
}


def load_peers(args: argparse.Namespace) -> list[Peer]:
    wanted = set(args.systems.split(",")) if args.systems else None
    peers: list[Peer] = []
    for key, name, loader in PEERS:
        if wanted is not None and key not in wanted and key != REFERENCE:
            continue
        peer = Peer(key, name)
        load = loader or _crossrank(*_BACKENDS[key], args.threads)
        start = time.perf_counter()
        try:
            load(peer, args.model, args.max_length)
        except ImportError as exc:
            peer.skipped = f"cannot be imported ({exc}); `make bench-peers` installs the peers"
        except Exception as exc:  # noqa: BLE001 - any load failure becomes the peer's row note
            peer.skipped = f"could not load the model folder: {type(exc).__name__}: {exc}"
        peer.load_s = time.perf_counter() - start
        if peer.skipped:
            print(f"skipping {name}: {peer.skipped}", file=sys.stderr)
        peers.append(peer)
    if peers[0].skipped:
        raise SystemExit(f"the reference {peers[0].name} failed: {peers[0].skipped}")
    return peers


# -- measuring ------------------------------------------------------------------------------
def measure(peers: list[Peer], work: Workload, sizes: list[int]) -> None:
    """Each peer reranks each query's top-K; peers take turns, the first one rotating."""
    active = [p for p in peers if not p.skipped]
    first = work.candidates[0][: max(sizes)]
    for peer in active:  # warm-up: lazy imports, first-call allocations
        peer.read(peer.call(peer.prepare(work.queries[0], first)), len(first))
    for k in sizes:
        for peer in active:
            peer.times[k], peer.rankings[k] = [], []
        for qi, query in enumerate(work.queries):
            docs = work.candidates[qi][:k]
            for j in range(len(active)):
                peer = active[(qi + j) % len(active)]
                payload = peer.prepare(query, docs)
                start = time.perf_counter()
                out = peer.call(payload)
                elapsed = time.perf_counter() - start
                peer.times[k].append(elapsed * 1000)
                peer.rankings[k].append(peer.read(out, len(docs)))
            print(f"  K={k}: query {qi + 1}/{len(work.queries)} done", file=sys.stderr)


@dataclass
class Row:
    key: str
    name: str
    k: int
    p50: float = math.nan
    p95: float = math.nan
    pairs_per_s: float = math.nan
    vs_predict: float = math.nan
    ndcg: float = math.nan
    max_dp: float = math.nan
    note: str = ""


def summarise(
    peers: list[Peer], work: Workload, qrels: dict[str, dict[str, int]], sizes: list[int]
) -> list[Row]:
    judged = {qid: qrels[qid] for qid in work.query_ids}
    rows: list[Row] = []
    for k in sizes:
        n_pairs = sum(min(k, len(c)) for c in work.candidates)
        dense = {qid: ids[:k] for qid, ids in zip(work.query_ids, work.candidate_ids)}
        dense_ndcg = compute_metrics(judged, dense, recall_k=k).aggregate["NDCG@10"]
        rows.append(Row("dense", "dense retrieval only (no reranking)", k, ndcg=dense_ndcg))
        reference = peers[0]
        ref_rate = n_pairs / (sum(reference.times[k]) / 1000)
        for peer in peers:
            row = Row(peer.key, peer.name, k, note=peer.skipped or peer.note)
            if peer.skipped:
                rows.append(row)
                continue
            row.p50 = percentile(peer.times[k], 50)
            row.p95 = percentile(peer.times[k], 95)
            row.pairs_per_s = n_pairs / (sum(peer.times[k]) / 1000)
            row.vs_predict = row.pairs_per_s / ref_rate
            rankings = {
                qid: [work.candidate_ids[qi][pos] for pos in order]
                for qi, (qid, (order, _)) in enumerate(zip(work.query_ids, peer.rankings[k]))
            }
            row.ndcg = compute_metrics(judged, rankings, recall_k=k).aggregate["NDCG@10"]
            diffs = [
                abs(a - b)
                for (_, mine), (_, ref) in zip(peer.rankings[k], reference.rankings[k])
                if mine is not None and ref is not None
                for a, b in zip(mine, ref)
            ]
            row.max_dp = max(diffs) if diffs else math.nan
            rows.append(row)
    return rows


# -- reporting ------------------------------------------------------------------------------
def _fmt(value: float, spec: str) -> str:
    return "—" if math.isnan(value) else format(value, spec)


def markdown(rows: list[Row], header: str) -> str:
    lines = [
        header,
        "",
        "| K | system | p50 ms/query | p95 ms/query | pairs/s | × predict | NDCG@10 "
        "| max \\|Δp\\| vs predict | notes |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.k} | {r.name} | {_fmt(r.p50, '.0f')} | {_fmt(r.p95, '.0f')} | "
            f"{_fmt(r.pairs_per_s, '.1f')} | {_fmt(r.vs_predict, '.2f')} | {_fmt(r.ndcg, '.4f')} | "
            f"{_fmt(r.max_dp, '.1e')} | {r.note} |"
        )
    return "\n".join(lines)


def quality_ndcg(rows: list[Row], quality: dict[str, Any] | None) -> tuple[dict[str, float], str]:
    """NDCG@10 per crossrank key for the 0.01 bar, and where it comes from: the many-query
    file from ``quantized_quality.py`` when given (torch fp32 = its reference backend),
    else the timed queries."""
    if quality is None:
        return {r.key: r.ndcg for r in rows}, "on the timed queries"
    by_backend = quality["ndcg@10"]
    reference = by_backend[quality["reference"]]
    out = {"crossrank-torch": reference}
    for key, (backend, dtype) in _BACKENDS.items():
        spec = backend if dtype == "float32" else f"{backend}:{dtype}"
        if spec in by_backend:
            out[key] = by_backend[spec]
    return (
        out,
        f"on {quality['queries']} queries (quantized_quality.py, {quality['reference']} as fp32)",
    )


def verdicts(rows: list[Row], sizes: list[int], quality: dict[str, Any] | None = None) -> list[str]:
    """The acceptance checks, stated with the numbers whichever way they come out."""
    out: list[str] = []
    ndcg, source = quality_ndcg(rows, quality)
    for k in sizes:
        at = {r.key: r for r in rows if r.k == k}
        fp32 = at.get("crossrank-torch")
        fp32_ndcg = ndcg.get("crossrank-torch", math.nan)
        measured = [r for r in at.values() if not math.isnan(r.pairs_per_s)]
        peers = [r for r in measured if not r.key.startswith("crossrank")]
        ours = [r for r in measured if r.key.startswith("crossrank")]
        if fp32 is not None and not math.isnan(fp32_ndcg):
            judged = [r for r in ours if r.key in ndcg]
            good = [r for r in judged if abs(ndcg[r.key] - fp32_ndcg) <= 0.01]
            if good:
                best = max(good, key=lambda r: r.pairs_per_s)
                top_peer = max(peers, key=lambda r: r.pairs_per_s, default=None)
                ahead = top_peer is None or best.pairs_per_s > top_peer.pairs_per_s
                ok = best.vs_predict >= 5.0 and ahead
                out.append(
                    f"- K={k}: fastest crossrank CPU path with NDCG@10 within 0.01 of torch fp32: "
                    f"{best.name}, {best.pairs_per_s:.1f} pairs/s = {best.vs_predict:.2f}× "
                    f"predict (target ≥ 5×), NDCG@10 {ndcg[best.key]:.4f} vs {fp32_ndcg:.4f} "
                    f"{source}; "
                    + (
                        f"fastest peer {top_peer.name} {top_peer.pairs_per_s:.1f} pairs/s"
                        if top_peer is not None
                        else "no peer measured"
                    )
                    + f": {'PASS' if ok else 'FAIL'}"
                )
            for r in judged:
                if abs(ndcg[r.key] - fp32_ndcg) > 0.01:
                    out.append(
                        f"- K={k}: {r.name} NDCG@10 {ndcg[r.key]:.4f} is more than 0.01 from "
                        f"torch fp32's {fp32_ndcg:.4f} {source}"
                    )
        twins = [at[key].pairs_per_s for key in _SAME_CALL if key in at]
        twins = [x for x in twins if not math.isnan(x)]
        if len(twins) > 1:
            out.append(
                f"- K={k}: noise yardstick: the {len(twins)} peers that make the identical "
                f"CrossEncoder.predict call differ by up to {1 - min(twins) / max(twins):.0%} "
                "in pairs/s in this run"
            )
    return out


_LABEL: dict[str, Any] = {
    "textcoords": "offset points",
    "va": "center",
    "fontsize": 7,
}


def plot(rows: list[Row], sizes: list[int], path: Path, title: str) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    systems = [r.name for r in rows if r.k == sizes[0] and r.key != "dense"]
    figure = Figure(figsize=(15, 0.55 * len(systems) + 2.2), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, 3, sharey=True)
    height = 0.8 / len(sizes)
    panels = [
        ("pairs/s (higher is better)", lambda r: r.pairs_per_s, "%.0f", False),
        ("ms/query: bar p50, whisker to p95 (lower is better)", lambda r: r.p50, "%.0f", True),
        ("NDCG@10 (dashed: dense only)", lambda r: r.ndcg, "%.3f", False),
    ]
    for ax, (label, value, fmt, whisker) in zip(axes, panels):
        for j, k in enumerate(sizes):
            at = {r.name: r for r in rows if r.k == k}
            ys = [i + (j - (len(sizes) - 1) / 2) * height for i in range(len(systems))]
            vals = [0.0 if math.isnan(value(at[s])) else value(at[s]) for s in systems]
            extra: dict[str, Any] = {}
            if whisker:
                up = [at[s].p95 - at[s].p50 for s in systems]
                extra["xerr"] = [[0.0] * len(systems), [0.0 if math.isnan(u) else u for u in up]]
            bars = ax.barh(ys, vals, height, label=f"K={k} candidates", color=f"C{j}", **extra)
            if whisker:  # "p50 / p95" after the whisker
                for y, s in zip(ys, systems):
                    if not math.isnan(at[s].p95):
                        text = f"{at[s].p50:.0f} / {at[s].p95:.0f}"
                        ax.annotate(text, (at[s].p95, y), xytext=(3, 0), **_LABEL)
            else:
                labels = [
                    "not run" if math.isnan(value(at[s])) else fmt % value(at[s]) for s in systems
                ]
                ax.bar_label(bars, labels=labels, fontsize=7, padding=2)
            dense = [r for r in rows if r.k == k and r.key == "dense"]
            if dense and label.startswith("NDCG"):
                ax.axvline(dense[0].ndcg, linestyle="--", linewidth=0.8, color=f"C{j}")
        ax.set_title(label, fontsize=9)
        ax.margins(x=0.15)
    axes[0].set_yticks(range(len(systems)), systems, fontsize=8)
    axes[0].invert_yaxis()
    handles, labels = axes[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncols=len(sizes), fontsize=8)
    figure.suptitle(title, fontsize=9)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)


def _loadavg() -> str:
    return f"{os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else "n/a"


# -- main -----------------------------------------------------------------------------------
def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_workload_args(parser, queries=10, top_k=100)
    parser.set_defaults(model=os.environ.get("CROSSRANK_RERANKER") or str(shared_starter_dir()))
    parser.add_argument(
        "--sizes", default="50,100", help="candidates per query to measure, comma-separated"
    )
    parser.add_argument("--max-length", type=int, default=256, help="tokens per pair, all peers")
    parser.add_argument(
        "--threads",
        type=int,
        default=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 2,
        help="torch and onnxruntime threads (default: the cores available)",
    )
    parser.add_argument("--systems", default="", help="comma-separated peer keys (default all)")
    parser.add_argument(
        "--quality",
        type=Path,
        default=None,
        help=(
            "quantized_quality.py --out JSON: judge the 0.01 NDCG@10 bar on its many queries "
            "(the timed queries are too few to resolve 0.01)"
        ),
    )
    parser.add_argument(
        "--out", default="reports/peers", help="writes OUT.md, OUT.png and OUT.json"
    )
    args = parser.parse_args()
    args.sizes = sorted({int(s) for s in args.sizes.split(",")})
    args.top_k = max(args.top_k, *args.sizes)
    return args


def main() -> None:
    args = parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    logging.basicConfig(level=logging.ERROR)
    for name in ("sentence_transformers", "transformers", "crossrank"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)

    work = load_workload(args)
    qrels = load_qrels(Path(args.data) / "qrels" / f"{args.split}.tsv")
    peers = load_peers(args)
    load_before, started = _loadavg(), time.perf_counter()
    measure(peers, work, args.sizes)
    minutes = (time.perf_counter() - started) / 60
    rows = summarise(peers, work, qrels, args.sizes)

    header = (
        f"## Reranking peers on SciFact {args.split}: {len(work.queries)} queries x "
        f"K dense candidates\n\n"
        f"model `{args.model}` (fp32 everywhere), max_length={args.max_length}; {machine()}; "
        f"onnxruntime/OpenVINO threads={args.threads}. Systems take turns on each query. "
        f"pairs/s = all pairs / all seconds; × predict = pairs/s relative to "
        f"CrossEncoder.predict at the same K; Δp = |probability − predict's| on the same pair. "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')}; 1-minute load "
        f"average {load_before} before and {_loadavg()} after the {minutes:.1f} timed minutes."
        f"\n\n`{shlex.join(['python', *sys.argv])}`"
    )
    table = markdown(rows, header)
    quality = None if args.quality is None else json.loads(args.quality.read_text())
    checks = verdicts(rows, args.sizes, quality)
    loads = [f"- {p.name}: {p.load_s:.1f} s" for p in peers]
    text = "\n".join(
        [
            table,
            "",
            "Acceptance checks:",
            *checks,
            "",
            "Load time (model; for ONNX/OpenVINO the one-time export, or its reuse from the "
            "cache):",
            *loads,
            "",
        ]
    )
    print("\n" + text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text(text, encoding="utf-8")
    plot(
        rows,
        args.sizes,
        out.with_suffix(".png"),
        f"SciFact {args.split}, {len(work.queries)} queries, max_length={args.max_length}, "
        f"fp32 unless noted; {machine()}",
    )
    raw = {
        p.key: {
            "name": p.name,
            "skipped": p.skipped,
            "load_s": p.load_s,
            "ms_per_query": {str(k): v for k, v in p.times.items()},
        }
        for p in peers
    }
    out.with_suffix(".json").write_text(json.dumps(raw, indent=1), encoding="utf-8")
    print(f"wrote {out.with_suffix('.md')}, {out.with_suffix('.png')}, {out.with_suffix('.json')}")


if __name__ == "__main__":
    main()
