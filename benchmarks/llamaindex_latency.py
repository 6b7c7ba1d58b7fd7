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

import copy
import logging
import warnings
from typing import Any

import torch
from _latency import Agreement, concurrent_ms, machine, parser, print_latency, timed
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle

from crossrank.data import load_beir
from crossrank.paths import default_biencoder

ST_MAX_LENGTH = 512  # what SentenceTransformerRerank gives its CrossEncoder


def parse_args() -> Any:
    args = parser(__doc__ or "", top_k=10, corpus="index")
    args.add_argument(
        "--as-stored",
        action="store_true",
        help="also time SentenceTransformerRerank in the dtype the checkpoint is stored in",
    )
    return args.parse_args()


def workload(args: Any) -> tuple[list[str], list[list[NodeWithScore]]]:
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


def gathered_ms(
    postprocessor: Any, queries: list[str], candidates: list[list[NodeWithScore]]
) -> float:
    copies = [copy.deepcopy(nodes) for nodes in candidates]
    return concurrent_ms(
        lambda: (
            postprocessor.apostprocess_nodes(nodes, query_bundle=QueryBundle(q))
            for q, nodes in zip(queries, copies, strict=True)
        )
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

    # each call gets its own copy: SentenceTransformerRerank writes into the nodes it is given
    fns = [(lambda nodes, q, p=p: p.postprocess_nodes(nodes, query_str=q)) for p in rows.values()]
    measured = timed(fns, queries, candidates, fresh=copy.deepcopy)
    (_, (_, out512), (_, out_st)) = measured[:3]
    gathered = {
        "CrossrankRerank (max_length=512)": gathered_ms(ours_512, queries, candidates),
        "SentenceTransformerRerank (fp32)": gathered_ms(theirs, queries, candidates),
    }

    # rankings on the pairs that fit 512 tokens (both read exactly the same tokens)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(args.model)
    agreement = Agreement(key=lambda n: n.node.node_id, score=lambda n: float(n.score or 0.0))
    for query, mine, stock in zip(queries, out512, out_st, strict=True):
        reference = {n.node.node_id: float(n.score or 0.0) for n in stock}
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
        agreement.add(mine, stock, reference, fits)

    n = len(queries)
    times = {name: t for name, (t, _) in zip(rows, measured, strict=True)}
    print_latency(
        f"LlamaIndex postprocessors, {n} SciFact queries x {k} candidates\n\n"
        f"model `{args.model}` (fp32 unless stated, device {args.device}); {machine()}",
        "postprocessor",
        times,
        gathered,
        "apostprocess_nodes",
        "/".join(list(times)[1:3]),  # both at max_length=512, fp32
    )
    agreement.print(ST_MAX_LENGTH, n * k)


if __name__ == "__main__":
    main()
