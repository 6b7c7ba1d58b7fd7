"""The engine on real SciFact text with the project's starter reranker."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer

from crossrank import Reranker
from crossrank.data import Collection, load_beir
from crossrank.engine.pairs import plan_pairs

pytestmark = pytest.mark.slow

STARTER = Path(__file__).resolve().parents[2] / "shared" / "models" / "crossrank-starter"


@pytest.fixture(scope="module")
def scifact(shared_data: Path) -> Collection:
    return load_beir(shared_data / "scifact", split="test")


@pytest.fixture(scope="module")
def starter(shared_data: Path) -> Path:
    path = shared_data.parent / "models" / "crossrank-starter"
    if not (path / "config.json").is_file():
        pytest.fail(f"starter model not found at {path}")
    return path


@pytest.mark.parametrize(("max_length", "query_max_tokens"), [(512, None), (256, 96)])
def test_no_query_token_is_ever_dropped(
    scifact: Collection, starter: Path, max_length: int, query_max_tokens: int | None
) -> None:
    # SciFact claims reach 77 tokens: the default query budget at 512 (a quarter) holds them.
    engine = Reranker(starter, max_length=max_length, query_max_tokens=query_max_tokens)
    loaded = engine._loaded
    docs = [d.full_text for d in list(scifact.corpus.values())[:3]]
    for query in scifact.judged_queries():
        q_ids = loaded.tokenizer.encode(query.text, add_special_tokens=False).ids
        windows, plans = plan_pairs(
            loaded.tokenizer,
            loaded.template,
            engine.geometry,
            query.text,
            docs,
            overflow="truncate",
        )
        assert not any(plan.query_cut for plan in plans)
        for window in windows:
            start = len(loaded.template.prefix)
            assert window.ids[start : start + len(q_ids)] == q_ids
            assert len(window.ids) <= max_length


def test_truncated_exactly_for_pairs_that_do_not_fit(scifact: Collection, starter: Path) -> None:
    engine = Reranker(starter, max_length=256)
    hf_tokenizer = AutoTokenizer.from_pretrained(str(starter))
    docs = [d.full_text for d in list(scifact.corpus.values())[:12]]
    queries = [q.text for q in scifact.judged_queries(4)]
    results = engine.rerank_many(queries, [docs] * len(queries))
    n_cut = 0
    for query, ranked in zip(queries, results, strict=True):
        for r in ranked:
            fits = len(hf_tokenizer(query, docs[r.index])["input_ids"]) <= 256
            assert r.truncated is (not fits)
            n_cut += r.truncated
    assert 0 < n_cut < len(queries) * len(docs)  # the sample has both kinds


def test_chunking_scores_long_documents_from_all_windows(
    scifact: Collection, starter: Path
) -> None:
    engine = Reranker(starter, max_length=128, overflow="chunk", stride=16, activation="raw")
    hf_tokenizer = AutoTokenizer.from_pretrained(str(starter))
    query = scifact.judged_queries(1)[0].text
    docs = [d.full_text for d in scifact.corpus.values() if len(d.full_text) > 1500][:4]
    assert len(docs) == 4
    results = {r.index: r for r in engine.rerank(query, docs)}
    q_len = len(hf_tokenizer(query, add_special_tokens=False)["input_ids"])
    budget = 128 - 3 - q_len
    model = engine.cross_encoder.model
    loaded = engine._loaded
    for i, doc in enumerate(docs):
        n = len(hf_tokenizer(doc, add_special_tokens=False)["input_ids"])
        assert n > budget
        expected_windows = 1 + math.ceil((n - budget) / (budget - 16))
        assert results[i].n_windows == expected_windows
        assert results[i].truncated is False
        windows, _ = plan_pairs(
            loaded.tokenizer, loaded.template, engine.geometry, query, [doc], overflow="chunk"
        )
        covered = [t for w in windows for t in w.ids]
        doc_ids = hf_tokenizer(doc, add_special_tokens=False)["input_ids"]
        assert set(doc_ids) <= set(covered)  # every document token was read
        with torch.inference_mode():
            logits = [
                model(
                    input_ids=torch.tensor([w.ids]),
                    token_type_ids=torch.tensor([w.type_ids]),
                    attention_mask=torch.ones(1, len(w.ids), dtype=torch.long),
                )
                .logits[0, 0]
                .item()
                for w in windows
            ]
        assert results[i].score == pytest.approx(max(logits), abs=1e-4)
