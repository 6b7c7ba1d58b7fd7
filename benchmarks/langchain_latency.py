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

import importlib.util
import logging
import warnings
from typing import Any

import torch
from _latency import Agreement, concurrent_ms, machine, parser, print_latency, timed
from langchain_core.documents import Document
from langchain_crossrank import RELEVANCE_SCORE_KEY, CrossrankReranker

from crossrank.data import load_beir
from crossrank.paths import default_biencoder


def parse_args() -> Any:
    args = parser(__doc__ or "", top_k=20, corpus="store")
    args.add_argument("--chunk-size", type=int, default=400, help="characters; 0 = whole")
    return args.parse_args()


def embeddings() -> Any:
    """all-MiniLM-L6-v2 (offline, unit-length vectors) from langchain_huggingface, else from
    langchain_community."""
    where = "langchain_huggingface"
    if importlib.util.find_spec(where) is None:
        where = "langchain_community.embeddings"
    options = {"model_kwargs": {"device": "cpu"}, "encode_kwargs": {"normalize_embeddings": True}}
    return importlib.import_module(where).HuggingFaceEmbeddings(
        model_name=default_biencoder(), **options
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


def workload(args: Any) -> tuple[list[str], list[list[Document]]]:
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
    (_, ours_out), (_, theirs_out) = measured[:2]
    gathered = {
        name: concurrent_ms(
            lambda c=c: (
                c.acompress_documents(d, q) for q, d in zip(queries, candidates, strict=True)
            )
        )
        for name, c in (("CrossrankReranker", ours), ("CrossEncoderReranker", theirs))
    }

    # rankings on the pairs that fit max_length (no truncation on either side)
    from transformers import AutoTokenizer

    engine: Any = ours.engine
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    agreement = Agreement(key=lambda d: d.id or "", score=lambda d: d.metadata[RELEVANCE_SCORE_KEY])
    for query, docs, mine, stock in zip(queries, candidates, ours_out, theirs_out, strict=True):
        pairs = [(query, d.page_content) for d in docs]
        reference = {d.id or "": float(s) for d, s in zip(docs, encoder.score(pairs), strict=True)}
        fits = {
            d.id
            for d in docs
            if len(tokenizer(query, d.page_content, verbose=False)["input_ids"])
            <= engine.max_length
        }
        agreement.add(mine, stock, reference, fits)

    n, k = len(queries), args.top_k
    title = (
        f"LangChain compressors, {n} SciFact queries x {k} candidates\n\n"
        f"model `{args.model}` ({engine.model_name.rsplit('/', 1)[-1]}, fp32, "
        f"max_length={engine.max_length}, device {args.device}); {machine()}"
    )
    rows = {name: times for name, (times, _) in zip(compressors, measured, strict=True)}
    pair = "/".join(list(rows)[:2])  # ours / the fp32 stock compressor
    print_latency(title, "compressor", rows, gathered, "acompress_documents", pair)
    agreement.print(engine.max_length, n * k)


if __name__ == "__main__":
    main()
