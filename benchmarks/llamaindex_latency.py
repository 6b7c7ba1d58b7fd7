"""LlamaIndex postprocessor latency: CrossrankRerank vs SentenceTransformerRerank.

A VectorStoreIndex (FAISS inner-product store, all-MiniLM-L6-v2 embeddings) holds SciFact
abstracts (the judged ones of the queries first); for each judged test claim its top-k nodes are
the candidates. Both postprocessors rerank the same candidates with the same local model folder
on the CPU (or --device), one query at a time, taking turns per query; the table gives
per-query latency. SentenceTransformerRerank has no dtype option and its CrossEncoder always
reads up to 512 tokens; it is measured cast to fp32 (like crossrank) and, with --as-stored, as
sentence-transformers loads the checkpoint (fp16 for the starter model). CrossrankRerank is
measured at the model's configured max_length and at 512 (the same tokens as
SentenceTransformerRerank). Then the N queries go at once through ``apostprocess_nodes``
(asyncio.gather), and the rankings are compared on the pairs that fit 512 tokens.

    .venv/bin/python benchmarks/llamaindex_latency.py --queries 20 --top-k 10
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import itertools
import logging
import os
import statistics
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle

from crossrank.data import load_beir
from crossrank.paths import default_biencoder, shared_data_dir

STARTER = Path(__file__).resolve().parents[2] / "shared" / "models" / "crossrank-starter"
TIE = 1e-4  # scores closer than this may swap places between two fp32 implementations
ST_MAX_LENGTH = 512  # what SentenceTransformerRerank gives its CrossEncoder

Postprocess = Callable[[list[NodeWithScore], str], list[NodeWithScore]]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=20, help="number of queries (N)")
    parser.add_argument("--top-k", type=int, default=10, help="candidates per query (K)")
    parser.add_argument("--model", default=os.environ.get("CROSSRANK_RERANKER", str(STARTER)))
    parser.add_argument("--docs", type=int, default=300, help="SciFact abstracts in the index")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--as-stored",
        action="store_true",
        help="also time SentenceTransformerRerank in the dtype the checkpoint is stored in",
    )
    parser.add_argument("--data", default=str(shared_data_dir() / "scifact"))
    return parser.parse_args()


def workload(args: argparse.Namespace) -> tuple[list[str], list[list[NodeWithScore]]]:
    """The judged test claims and each one's top-k nodes from a FAISS-backed index."""
    import faiss
    from llama_index.core import Document, StorageContext, VectorStoreIndex
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding
    from llama_index.vector_stores.faiss import FaissVectorStore

    collection = load_beir(args.data, split="test")
    queries = collection.judged_queries(args.queries)
    wanted = collection.judged_first_ids(queries, args.docs)
    documents = [
        Document(
            id_=doc_id,
            text=collection.corpus[doc_id].text,
            metadata={"title": collection.corpus[doc_id].title},
        )
        for doc_id in wanted
    ]
    embed_model = HuggingFaceEmbedding(model_name=default_biencoder(), device="cpu")
    storage = StorageContext.from_defaults(
        vector_store=FaissVectorStore(faiss_index=faiss.IndexFlatIP(384))
    )
    index = VectorStoreIndex.from_documents(
        documents, storage_context=storage, embed_model=embed_model
    )
    retriever = index.as_retriever(similarity_top_k=args.top_k)
    candidates = [retriever.retrieve(q.text) for q in queries]
    n_nodes = len(index.docstore.docs)
    print(f"index: {len(wanted)} SciFact abstracts, {n_nodes} nodes; {len(queries)} queries")
    return [q.text for q in queries], candidates


def timed(
    fns: Sequence[Postprocess], queries: list[str], candidates: list[list[NodeWithScore]]
) -> list[tuple[list[float], list[list[NodeWithScore]]]]:
    """Per-query milliseconds and outputs of each function; the functions take turns on each
    query, so a change in machine load affects them alike. Each gets its own deep copy of the
    candidates (SentenceTransformerRerank writes its scores into the nodes it is given)."""
    times: list[list[float]] = [[] for _ in fns]
    outputs: list[list[list[NodeWithScore]]] = [[] for _ in fns]
    for query, nodes in zip(queries, candidates, strict=True):
        for i, fn in enumerate(fns):
            mine = copy.deepcopy(nodes)
            start = time.perf_counter()
            outputs[i].append(fn(mine, query))
            times[i].append((time.perf_counter() - start) * 1000)
    return list(zip(times, outputs, strict=True))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    lo, hi = int(pos), min(int(pos) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def concurrent_ms(
    postprocessor: Any, queries: list[str], candidates: list[list[NodeWithScore]]
) -> float:
    copies = [copy.deepcopy(nodes) for nodes in candidates]

    async def run() -> None:
        await asyncio.gather(
            *(
                postprocessor.apostprocess_nodes(nodes, query_bundle=QueryBundle(q))
                for q, nodes in zip(queries, copies, strict=True)
            )
        )

    start = time.perf_counter()
    asyncio.run(run())
    return (time.perf_counter() - start) * 1000


def same_order(
    ours: list[NodeWithScore], theirs: list[NodeWithScore], scores: dict[str, float]
) -> bool:
    """Same nodes in the same order, up to swaps of scores that tie within TIE."""
    if sorted(n.node.node_id for n in ours) != sorted(n.node.node_id for n in theirs):
        return False
    return all(
        scores[a.node.node_id] >= scores[b.node.node_id] - TIE
        for a, b in itertools.pairwise(theirs)
    )


def main() -> None:
    args = parse_args()
    logging.basicConfig(level=logging.ERROR)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    from llama_index.core.postprocessor import SentenceTransformerRerank
    from llama_index.postprocessor.crossrank import CrossrankRerank

    queries, candidates = workload(args)
    k = args.top_k
    common = {"device": args.device, "dtype": "float32", "top_n": k}
    quiet = {"reranker_kwargs": {"progress_threshold": None}}
    ours = CrossrankRerank(model=args.model, **common, **quiet)
    ours_512 = CrossrankRerank(model=args.model, max_length=ST_MAX_LENGTH, **common, **quiet)
    theirs = SentenceTransformerRerank(model=args.model, top_n=k, device=args.device)
    stored_dtype = next(theirs._model.parameters()).dtype
    as_stored = None
    if args.as_stored and stored_dtype != torch.float32:
        as_stored = SentenceTransformerRerank(model=args.model, top_n=k, device=args.device)
    theirs._model.to(torch.float32)

    default_length = ours.engine.max_length  # type: ignore[attr-defined]
    rows: dict[str, Any] = {
        f"CrossrankRerank (max_length={default_length}, the model's)": ours,
        f"CrossrankRerank (max_length={ST_MAX_LENGTH})": ours_512,
        f"SentenceTransformerRerank (max_length={ST_MAX_LENGTH}, cast to fp32)": theirs,
    }
    if as_stored is not None:
        rows[f"SentenceTransformerRerank (max_length={ST_MAX_LENGTH}, {stored_dtype})"] = as_stored
    for postprocessor in rows.values():  # warm-up: first-call allocations, lazy imports
        postprocessor.postprocess_nodes(copy.deepcopy(candidates[0]), query_str=queries[0])

    fns = [(lambda nodes, q, p=p: p.postprocess_nodes(nodes, query_str=q)) for p in rows.values()]
    measured = timed(fns, queries, candidates)
    (_, (t512, out512), (t_st, out_st)) = measured[:3]
    gathered = {
        "CrossrankRerank (max_length=512)": concurrent_ms(ours_512, queries, candidates),
        "SentenceTransformerRerank (fp32)": concurrent_ms(theirs, queries, candidates),
    }

    # rankings on the pairs that fit 512 tokens (both read exactly the same tokens)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(args.model)
    fit_same = fit_pairs = full_same = 0
    max_diff = 0.0
    for query, mine, stock in zip(queries, out512, out_st, strict=True):
        reference = {n.node.node_id: float(n.score or 0.0) for n in stock}
        full_same += same_order(mine, stock, reference)
        fits = {
            n.node.node_id
            for n in stock
            if len(
                tokenizer(
                    query, n.node.get_content(metadata_mode=MetadataMode.EMBED), verbose=False
                )["input_ids"]
            )
            <= ST_MAX_LENGTH
        }
        fit_pairs += len(fits)
        mine_fit = [n for n in mine if n.node.node_id in fits]
        stock_fit = [n for n in stock if n.node.node_id in fits]
        fit_same += same_order(mine_fit, stock_fit, reference)
        for n in mine_fit:
            max_diff = max(max_diff, abs(float(n.score or 0.0) - reference[n.node.node_id]))

    n = len(queries)
    print(
        f"\n## LlamaIndex postprocessors, {n} SciFact queries x {k} candidates\n\n"
        f"model `{args.model}` (fp32 unless stated, device {args.device}); {machine()}\n"
    )
    print("| postprocessor | p50 ms/query | p95 ms/query | mean ms/query |")
    print("|---|---:|---:|---:|")
    for name, (times, _) in zip(rows, measured, strict=True):
        print(
            f"| {name} | {percentile(times, 0.5):.1f} | {percentile(times, 0.95):.1f} | "
            f"{statistics.fmean(times):.1f} |"
        )
    speedup = statistics.median(t_st) / statistics.median(t512)
    print(
        f"\np50 speed-up of CrossrankRerank over SentenceTransformerRerank at the same "
        f"max_length={ST_MAX_LENGTH} (fp32): {speedup:.2f}x\n"
    )
    print(f"| {n} queries at once (asyncio.gather of apostprocess_nodes) | total ms |")
    print("|---|---:|")
    for name, ms in gathered.items():
        print(f"| {name} | {ms:.0f} |")
    print(
        f"\nRankings at max_length={ST_MAX_LENGTH} on pairs that fit ({fit_pairs} of {n * k} "
        f"pairs): same order for {fit_same}/{n} queries; max |score difference| "
        f"{max_diff:.2e} (ties within {TIE:g} may swap)."
    )
    print(
        f"Full candidate lists (longer pairs are truncated differently: crossrank keeps the "
        f"query whole, sentence-transformers cuts the longest side): same order for "
        f"{full_same}/{n} queries."
    )


def machine() -> str:
    import platform

    return (
        f"{platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads)"
    )


if __name__ == "__main__":
    main()
