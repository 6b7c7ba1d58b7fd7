"""Context assembly at a token budget: how much relevant evidence reaches the LLM's prompt.

Dense top-k (all-MiniLM-L6-v2 + FAISS) → rerank (the starter cross-encoder, overflow="chunk")
→ a context of 256…2048 tokens, built three ways from the same reranked lists:

  (a) top-n    whole documents in rank order, the text cut at the budget
  (b) litm     the same documents in LongContextReorder order (best at both ends), cut likewise
  (c) packer   crossrank.ContextPacker with its defaults

For each budget: evidence recall (share of queries whose context holds text of at least one
relevant document; share of relevant documents present), relevant-token share, duplicates
included, and packing time per query. A document counts as present when at least
``--min-evidence-tokens`` of its text (or all of it) is in the context.

    .venv/bin/python benchmarks/context_budget.py            # SciFact test + NFCorpus dev

The reranked lists are cached under ``crossrank.paths.cache_dir() / "context_budget"``;
``--refresh`` recomputes them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crossrank.data import load_beir
from crossrank.paths import cache_dir, shared_data_dir, shared_starter_dir
from crossrank.ranking.text import exact_key, jaccard, shingles
from crossrank.types import RerankResult

CACHE_FORMAT = 2


@dataclass
class Ranked:
    """One query's reranked candidates (best first) and its judgments."""

    query: str
    ids: list[str]
    results: list[RerankResult]
    relevant: set[str]


def _cache_file(name: str, split: str, args: argparse.Namespace) -> Path:
    key = json.dumps(
        [CACHE_FORMAT, name, split, args.top_k, str(args.model), args.backend, args.queries],
        sort_keys=True,
    )
    digest = hashlib.sha1(key.encode()).hexdigest()[:12]
    return cache_dir() / "context_budget" / f"{name}-{split}-{digest}.json"


def reranked_lists(name: str, split: str, args: argparse.Namespace) -> list[Ranked]:
    """The reranked top-k of every judged query, from the cache when it is there."""
    collection = load_beir(shared_data_dir() / name, split=split)
    queries = collection.judged_queries(args.queries)
    path = _cache_file(name, split, args)
    partial = path.with_suffix(".partial.json")
    if path.is_file() and not args.refresh:
        rows = json.loads(path.read_text())
    else:
        from crossrank import Reranker
        from crossrank.retrieval.cache import cached_retriever

        retriever, _ = cached_retriever(collection, device="cpu")
        hits = retriever.search_batch([q.text for q in queries], top_k=args.top_k)
        reranker = Reranker(
            args.model,
            device="cpu",
            backend=args.backend,
            overflow="chunk",
            progress_threshold=None,
        )
        # rerank in groups of queries, saving after each, so an interrupted run resumes
        rows = [] if args.refresh or not partial.is_file() else json.loads(partial.read_text())
        path.parent.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        for at in range(len(rows), len(queries), args.group):
            group = list(zip(queries, hits))[at : at + args.group]
            ranked = reranker.rerank_many(
                [q.text for q, _ in group], [[h.text for h in row] for _, row in group]
            )
            rows += [
                {
                    "query_id": q.id,
                    "ids": [h.id for h in row],
                    "texts": [h.text for h in row],
                    "results": [
                        [r.index, r.score, r.rerank_score, r.truncated, r.n_windows, r.span]
                        for r in results
                    ],
                }
                for (q, row), results in zip(group, ranked)
            ]
            partial.write_text(json.dumps(rows))
            print(f"# {name}: {len(rows)}/{len(queries)} queries reranked", flush=True)
        print(f"# {name}: reranked in {time.perf_counter() - started:.0f} s")
        path.write_text(json.dumps(rows))
        partial.unlink(missing_ok=True)
    out = []
    by_id = {q.id: q for q in queries}
    for row in rows:
        texts = row["texts"]
        results = [
            RerankResult(
                index=i,
                score=score,
                rerank_score=rerank,
                retrieval_score=None,
                truncated=truncated,
                n_windows=n_windows,
                document=texts[i],
                span=None if span is None else (int(span[0]), int(span[1])),
            )
            for i, score, rerank, truncated, n_windows, span in row["results"]
        ]
        relevant = set(collection.relevant(row["query_id"]))
        out.append(Ranked(by_id[row["query_id"]].text, row["ids"], results, relevant))
    return out


def _doc_key(text: str) -> tuple[str, frozenset[tuple[str, ...]]]:
    return exact_key(text), shingles(text, 3)


def _near_duplicates(texts: list[str], threshold: float = 0.6) -> int:
    """How many of ``texts`` repeat an earlier one (same words, or 3-shingle Jaccard >= 0.6)."""
    keys = [_doc_key(t) for t in texts]
    return sum(
        any(k[0] == o[0] or jaccard(k[1], o[1]) >= threshold for o in keys[:i])
        for i, k in enumerate(keys)
    )


@dataclass
class Context:
    """One query's context: the text, and for each source document the text of it included."""

    text: str
    n_tokens: int
    included: list[tuple[int, str]]  # (result index, included text of that document)


def baseline(
    ranked: Ranked, budget: int, count: Any, cut: Any, *, litm: bool, separator: str = "\n\n"
) -> Context:
    """Whole documents in rank order (or LongContextReorder order), the text cut at the budget."""
    docs: list[tuple[int, str]] = []
    used = 0
    for r in ranked.results:  # the documents that (partly) fit, best first
        docs.append((r.index, r.document))
        used += count(r.document) + (count(separator) if len(docs) > 1 else 0)
        if used >= budget:
            break
    if litm:  # LangChain's LongContextReorder on the documents that fit
        docs = docs[0::2] + docs[1::2][::-1]
    text = cut(separator.join(d for _, d in docs), budget)
    included, at = [], 0
    for index, doc in docs:
        part = text[at : at + len(doc)]
        if part:
            included.append((index, part))
        at += len(doc) + len(separator)
    return Context(text, count(text), included)


def packed(ranked: Ranked, packer: Any) -> Context:
    ctx = packer.pack(ranked.query, ranked.results, ids=ranked.ids)
    return Context(ctx.text, ctx.n_tokens, [(p.index, p.text) for p in ctx.passages])


def measure(ranked: Ranked, ctx: Context, count: Any, min_tokens: int) -> dict[str, float]:
    present = set()
    relevant_tokens = 0
    for index, part in ctx.included:
        doc_id = ranked.ids[index]
        n = count(part)
        if n >= min_tokens or n >= count(_doc(ranked, index).strip()):
            present.add(doc_id)
        if doc_id in ranked.relevant:
            relevant_tokens += n
    found = present & ranked.relevant
    texts = [_doc(ranked, i) for i, _ in ctx.included]
    return {
        "hit": float(bool(found)),
        "recall": len(found) / len(ranked.relevant),
        "rel_share": relevant_tokens / ctx.n_tokens if ctx.n_tokens else 0.0,
        "dups": float(_near_duplicates(texts)),
        "tokens": float(ctx.n_tokens),
    }


def _doc(ranked: Ranked, index: int) -> str:
    return next(r.document for r in ranked.results if r.index == index)


def report(name: str, split: str, lists: list[Ranked], args: argparse.Namespace) -> None:
    from crossrank import ContextPacker
    from crossrank.ranking.text import token_counter

    tokenizer = args.tokenizer or args.model
    count = token_counter(tokenizer)
    fast = cutter(tokenizer)
    n_judged_in_pool = sum(bool(set(r.ids) & r.relevant) for r in lists)
    print(
        f"\n### {name} {split}: {len(lists)} queries, dense top-{args.top_k} → rerank; "
        f"{n_judged_in_pool} queries have a relevant document in the top-{args.top_k}\n"
    )
    print(
        "| budget | method | queries with evidence | relevant docs present | relevant-token share "
        "| duplicates / query | tokens used | ms / query |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    for budget in args.budgets:
        packer = ContextPacker(budget, tokenizer=tokenizer)
        methods = {
            "(a) top-n, rank order": lambda r, b=budget: baseline(r, b, count, fast, litm=False),
            "(b) top-n, LongContextReorder": lambda r, b=budget: baseline(
                r, b, count, fast, litm=True
            ),
            "(c) ContextPacker defaults": lambda r, p=packer: packed(r, p),
        }
        for label, build in methods.items():
            rows, seconds = [], 0.0
            for ranked in lists:
                started = time.perf_counter()
                ctx = build(ranked)
                seconds += time.perf_counter() - started
                if ctx.n_tokens > budget:
                    raise SystemExit(f"{label} exceeded the budget: {ctx.n_tokens} > {budget}")
                rows.append(measure(ranked, ctx, count, args.min_evidence_tokens))
            mean = {k: statistics.fmean(r[k] for r in rows) for k in rows[0]}
            print(
                f"| {budget} | {label} | {mean['hit']:.1%} | {mean['recall']:.1%} | "
                f"{mean['rel_share']:.1%} | {mean['dups']:.2f} | {mean['tokens']:.0f} | "
                f"{1000 * seconds / len(lists):.1f} |"
            )


def cutter(tokenizer: Any) -> Any:
    """``cut(text, n)``: the longest prefix of ``text`` with at most ``n`` tokens."""
    from crossrank.ranking.text import token_counter

    count = token_counter(tokenizer)

    def cut(text: str, n: int) -> str:
        if count(text) <= n:
            return text
        lo, hi = 0, len(text)
        while lo < hi:  # binary search on characters: the token count grows with the prefix
            mid = (lo + hi + 1) // 2
            if count(text[:mid]) <= n:
                lo = mid
            else:
                hi = mid - 1
        return text[:lo]

    return cut


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--collections", nargs="+", default=["scifact:test", "nfcorpus:dev"], help="name:split"
    )
    parser.add_argument("--queries", type=int, default=None, help="judged queries (default all)")
    parser.add_argument("--top-k", type=int, default=50)
    parser.add_argument("--budgets", type=int, nargs="+", default=[256, 512, 1024, 2048])
    parser.add_argument(
        "--model", default=os.environ.get("CROSSRANK_RERANKER", str(shared_starter_dir()))
    )
    parser.add_argument("--backend", default="onnx-int8")
    parser.add_argument(
        "--tokenizer",
        default=None,
        help="tokenizer the budget is counted with (default: the model's)",
    )
    parser.add_argument("--min-evidence-tokens", type=int, default=20)
    parser.add_argument("--group", type=int, default=25, help="queries reranked per saved step")
    parser.add_argument("--prepare-only", action="store_true", help="only build the cached lists")
    parser.add_argument("--refresh", action="store_true", help="recompute the reranked lists")
    args = parser.parse_args()
    for spec in args.collections:
        name, split = spec.split(":")
        lists = reranked_lists(name, split, args)
        n_spans = sum(r.span is not None for ranked in lists for r in ranked.results)
        print(f"# {name} {split}: {len(lists)} queries, {n_spans} results with a span")
        if args.prepare_only:
            continue
        report(name, split, lists, args)


if __name__ == "__main__":
    main()
