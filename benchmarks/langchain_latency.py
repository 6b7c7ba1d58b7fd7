"""LangChain compressor latency: CrossrankReranker vs CrossEncoderReranker+HuggingFaceCrossEncoder.

A LangChain FAISS store (all-MiniLM-L6-v2 embeddings) holds SciFact abstracts split into chunks;
for each judged test claim its top-k chunks are the candidates. Both compressors rerank the same
candidates with the same local model folder (fp32 on CPU, or --device), one query at a time;
the table gives per-query latency. Then the N queries are sent at once through
``acompress_documents`` (asyncio.gather), and the two rankings are compared on the pairs that
fit the model's max_length (where both read exactly the same tokens).

    .venv/bin/python benchmarks/langchain_latency.py --queries 20 --top-k 20
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import logging
import os
import platform
import statistics
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch
from langchain_core.documents import Document
from langchain_crossrank import RELEVANCE_SCORE_KEY, CrossrankReranker

from crossrank.data import load_beir
from crossrank.paths import default_biencoder, shared_data_dir, shared_starter_dir

STARTER = shared_starter_dir()
TIE = 1e-4  # scores closer than this may swap places between two fp32 implementations


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=20, help="number of queries (N)")
    parser.add_argument("--top-k", type=int, default=20, help="candidates per query (K)")
    parser.add_argument("--model", default=os.environ.get("CROSSRANK_RERANKER", str(STARTER)))
    parser.add_argument("--docs", type=int, default=300, help="SciFact abstracts in the store")
    parser.add_argument("--chunk-size", type=int, default=400, help="characters; 0 = whole")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--data", default=str(shared_data_dir() / "scifact"))
    return parser.parse_args()


def embeddings() -> Any:
    try:
        from langchain_huggingface import HuggingFaceEmbeddings
    except ImportError:
        from langchain_community.embeddings import HuggingFaceEmbeddings
    return HuggingFaceEmbeddings(
        model_name=default_biencoder(),
        model_kwargs={"device": "cpu"},
        encode_kwargs={"normalize_embeddings": True},
    )


def hf_cross_encoder(model: str, device: str, *, fp32: bool = True) -> Any:
    """LangChain's sentence-transformers cross-encoder; ``fp32=False`` keeps its default dtype
    (sentence-transformers 6 loads a checkpoint in the dtype it was saved in)."""
    try:
        from langchain_huggingface import HuggingFaceCrossEncoder  # type: ignore[attr-defined]
    except ImportError:
        from langchain_community.cross_encoders import HuggingFaceCrossEncoder
    kwargs: dict[str, Any] = {"device": device}
    if fp32:
        kwargs["model_kwargs"] = {"dtype": torch.float32}
    return HuggingFaceCrossEncoder(model_name=model, model_kwargs=kwargs)


def workload(args: argparse.Namespace) -> tuple[list[str], list[list[Document]]]:
    from langchain_community.vectorstores import FAISS
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    collection = load_beir(args.data, split="test")
    queries = collection.judged_queries(args.queries)
    wanted = collection.judged_first_ids(queries, args.docs)
    docs: list[Document] = []
    for doc_id in wanted:
        text = collection.corpus[doc_id].full_text
        if args.chunk_size:
            splitter = RecursiveCharacterTextSplitter(chunk_size=args.chunk_size, chunk_overlap=0)
            chunks = splitter.split_text(text)
        else:
            chunks = [text]
        docs.extend(
            Document(id=f"{doc_id}-{j}", page_content=c, metadata={"doc_id": doc_id})
            for j, c in enumerate(chunks)
        )
    store = FAISS.from_documents(docs, embeddings())
    candidates = [store.similarity_search(q.text, k=args.top_k) for q in queries]
    print(f"store: {len(wanted)} SciFact abstracts, {len(docs)} chunks; {len(queries)} queries")
    return [q.text for q in queries], candidates


def timed(
    fns: Sequence[Callable[[Sequence[Document], str], Sequence[Document]]],
    queries: list[str],
    candidates: list[list[Document]],
) -> list[tuple[list[float], list[list[Document]]]]:
    """Per-query milliseconds and outputs of each function; the functions take turns on each
    query, so a change in machine load affects them alike."""
    times: list[list[float]] = [[] for _ in fns]
    outputs: list[list[list[Document]]] = [[] for _ in fns]
    for query, docs in zip(queries, candidates, strict=True):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            outputs[i].append(list(fn(docs, query)))
            times[i].append((time.perf_counter() - start) * 1000)
    return list(zip(times, outputs, strict=True))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    lo, hi = int(pos), min(int(pos) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def concurrent_ms(compressor: Any, queries: list[str], candidates: list[list[Document]]) -> float:
    async def run() -> None:
        await asyncio.gather(
            *(
                compressor.acompress_documents(d, q)
                for q, d in zip(queries, candidates, strict=True)
            )
        )

    start = time.perf_counter()
    asyncio.run(run())
    return (time.perf_counter() - start) * 1000


def same_order(ours: list[Document], theirs: list[Document], scores: dict[str, float]) -> bool:
    """Same documents in the same order, up to swaps of scores that tie within TIE."""
    if sorted(d.id or "" for d in ours) != sorted(d.id or "" for d in theirs):
        return False
    return all(
        scores[a.id or ""] >= scores[b.id or ""] - TIE for a, b in itertools.pairwise(theirs)
    )


def main() -> None:
    args = parse_args()
    logging.basicConfig(level=logging.ERROR)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    queries, candidates = workload(args)

    ours = CrossrankReranker(
        model=args.model,
        device=args.device,
        dtype="float32",
        top_n=args.top_k,
        reranker_kwargs={"progress_threshold": None},
    )
    from langchain_classic.retrievers.document_compressors import CrossEncoderReranker

    encoder = hf_cross_encoder(args.model, args.device)
    theirs = CrossEncoderReranker(model=encoder, top_n=args.top_k)
    compressors = {
        "langchain_crossrank.CrossrankReranker": ours,
        "CrossEncoderReranker + HuggingFaceCrossEncoder (fp32)": theirs,
    }
    as_stored = hf_cross_encoder(args.model, args.device, fp32=False)
    stored_dtype = next(as_stored.client.parameters()).dtype
    if stored_dtype != torch.float32:  # what users get without model_kwargs
        name = f"CrossEncoderReranker + HuggingFaceCrossEncoder (default: {stored_dtype})"
        compressors[name] = CrossEncoderReranker(model=as_stored, top_n=args.top_k)
    for compressor in compressors.values():  # warm-up: first-call allocations, lazy imports
        compressor.compress_documents(candidates[0], queries[0])

    measured = timed([c.compress_documents for c in compressors.values()], queries, candidates)
    rows = [(name, t) for name, (t, _) in zip(compressors, measured, strict=True)]
    (ours_times, ours_out), (theirs_times, theirs_out) = measured[:2]
    gathered = {
        "CrossrankReranker": concurrent_ms(ours, queries, candidates),
        "CrossEncoderReranker": concurrent_ms(theirs, queries, candidates),
    }

    # rankings on the pairs that fit max_length (no truncation on either side)
    from transformers import AutoTokenizer

    engine: Any = ours.engine
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    fit_same = fit_pairs = full_same = 0
    max_diff = 0.0
    for query, docs, mine, stock in zip(queries, candidates, ours_out, theirs_out, strict=True):
        reference = {
            d.id or "": float(s)
            for d, s in zip(
                docs, encoder.score([(query, d.page_content) for d in docs]), strict=True
            )
        }
        full_same += same_order(mine, stock, reference)
        fits = {
            d.id
            for d in docs
            if len(tokenizer(query, d.page_content, verbose=False)["input_ids"])
            <= engine.max_length
        }
        fit_pairs += len(fits)
        mine_fit = [d for d in mine if d.id in fits]
        stock_fit = [d for d in stock if d.id in fits]
        fit_same += same_order(mine_fit, stock_fit, reference)
        for d in mine_fit:
            max_diff = max(max_diff, abs(d.metadata[RELEVANCE_SCORE_KEY] - reference[d.id or ""]))

    n, k = len(queries), args.top_k
    print(
        f"\n## LangChain compressors, {n} SciFact queries x {k} candidates\n\n"
        f"model `{args.model}` ({engine.model_name.rsplit('/', 1)[-1]}, fp32, "
        f"max_length={engine.max_length}, device {args.device}); {machine()}\n"
    )
    print("| compressor | p50 ms/query | p95 ms/query | mean ms/query |")
    print("|---|---:|---:|---:|")
    for name, times in rows:
        print(
            f"| {name} | {percentile(times, 0.5):.1f} | {percentile(times, 0.95):.1f} | "
            f"{statistics.fmean(times):.1f} |"
        )
    speedup = statistics.median(theirs_times) / statistics.median(ours_times)
    print(f"\np50 speed-up of CrossrankReranker over the fp32 stock compressor: {speedup:.2f}x\n")
    print(f"| {n} queries at once (asyncio.gather of acompress_documents) | total ms |")
    print("|---|---:|")
    for name, ms in gathered.items():
        print(f"| {name} | {ms:.0f} |")
    print(
        f"\nRankings on pairs that fit max_length={engine.max_length} ({fit_pairs} of {n * k} "
        f"pairs): same order for {fit_same}/{n} queries; max |score difference| "
        f"{max_diff:.2e} (ties within {TIE:g} may swap)."
    )
    print(
        f"Full candidate lists (documents over max_length are truncated differently: crossrank "
        f"keeps the query whole, sentence-transformers cuts the longest side): same order for "
        f"{full_same}/{n} queries."
    )


def machine() -> str:
    return (
        f"{platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads)"
    )


if __name__ == "__main__":
    main()
