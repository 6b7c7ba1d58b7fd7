"""ContextPacker: budgets counted with a real tokenizer, duplicates, spans, orders, cut-offs."""

from __future__ import annotations

import copy
import random
from pathlib import Path
from typing import Any

import pytest

from crossrank import ContextPacker, InvalidInputError, PackedContext, RerankResult
from crossrank.ranking.text import sentence_ends, sentence_starts


def words(text: str) -> int:
    return len(text.split())


def result(
    index: int, score: float, document: str, span: tuple[int, int] | None = None
) -> RerankResult:
    return RerankResult(
        index=index,
        score=score,
        rerank_score=score,
        retrieval_score=None,
        truncated=span is not None,
        n_windows=1 if span is None else 3,
        document=document,
        span=span,
    )


def sentences(tag: str, n: int) -> str:
    return " ".join(f"Sentence {i} of {tag} says something {tag}-specific here." for i in range(n))


@pytest.fixture(scope="module")
def scifact_docs(shared_data: Path) -> list[str]:
    from crossrank.data import load_corpus

    corpus = load_corpus(shared_data / "scifact" / "corpus.jsonl")
    return [doc.full_text for doc in list(corpus.values())[:60]]


@pytest.fixture(scope="module")
def hf_tokenizer(minilm_path: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(minilm_path))


def hf_count(tokenizer: Any, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


# -- the budget ---------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("budget", [12, 40, 128, 256, 512, 1024, 2048])
@pytest.mark.parametrize("order", ["score", "lost_in_the_middle", "source"])
def test_budget_is_never_exceeded_with_the_named_tokenizer(
    scifact_docs: list[str], minilm_path: Path, hf_tokenizer: Any, budget: int, order: Any
) -> None:
    packer = ContextPacker(budget, tokenizer=minilm_path, order=order)
    results = [result(i, 10.0 - i / 7, d) for i, d in enumerate(scifact_docs[:30])]
    packed = packer.pack("query", results)
    assert hf_count(hf_tokenizer, packed.text) == packed.n_tokens <= budget
    assert packed.passages
    for p in packed.passages:
        assert p.n_tokens == hf_count(
            hf_tokenizer,
            packer.template.format(
                n=p.citation, id=p.source_id, text=p.text, score=p.score, index=p.index
            ),
        )
    if budget >= 512:  # a large budget holds several sources, and is mostly used
        assert len(packed.passages) >= 4
        assert packed.n_tokens > 0.8 * budget


def test_the_budget_counts_templates_and_separators() -> None:
    chars = len  # a counter where every character costs a token
    docs = [f"Doc {i} is short." for i in range(10)]
    packer = ContextPacker(
        120,
        tokenizer=chars,
        separator="\n-----\n",
        template="<<{n}|{id}>> {text}",
        max_passage_share=None,
    )
    packed = packer.pack("q", [result(i, -i, d) for i, d in enumerate(docs)])
    assert len(packed.text) == packed.n_tokens <= 120
    assert packed.text.count("\n-----\n") == len(packed.passages) - 1
    assert packed.text.startswith("<<1|0>> Doc 0 is short.")
    assert len(packed.passages) < 10
    assert {d.reason for d in packed.dropped} == {"budget"}


def test_a_non_additive_counter_still_fits() -> None:
    rng = random.Random(0)
    vocab = "alpha beta gamma delta epsilon zeta eta theta".split()
    docs = [
        ". ".join(" ".join(rng.choice(vocab) for _ in range(rng.randint(3, 12))) for _ in range(8))
        for _ in range(20)
    ]

    def count(text: str) -> int:  # pairs of characters, rounded up: not additive over joins
        return (len(text) + 1) // 2

    results = [result(i, rng.random(), d) for i, d in enumerate(docs)]
    for budget in range(5, 400, 17):
        packed = ContextPacker(budget, tokenizer=count, dedup_threshold=None).pack("q", results)
        assert count(packed.text) == packed.n_tokens <= budget


# -- duplicates ---------------------------------------------------------------------------------
def test_exact_and_near_duplicates_keep_the_higher_scored_copy() -> None:
    base = sentences("aspirin", 6)
    near = base.replace("Sentence 3", "Sentence three")
    other = sentences("coffee", 6)
    results = [
        result(0, 1.0, base),  # lower-scored exact copy comes first in the input
        result(1, 5.0, base.upper()),  # same words, other case and spacing
        result(2, 3.0, near),
        result(3, 2.0, other),
    ]
    packed = ContextPacker(2048, tokenizer=words).pack("q", results)
    assert [p.index for p in packed.passages] == [1, 3]
    dup = {d.index: d for d in packed.dropped}
    assert dup[0].reason == "duplicate" and dup[0].duplicate_of == 1
    assert dup[2].reason == "duplicate" and dup[2].duplicate_of == 1
    kept = ContextPacker(2048, tokenizer=words, dedup_threshold=None).pack("q", results)
    assert sorted(p.index for p in kept.passages) == [1, 2, 3]  # exact copies always go


# -- spans --------------------------------------------------------------------------------------
def test_the_best_window_is_used_and_spans_point_at_the_text() -> None:
    head = sentences("intro", 30)
    middle = "The matching passage says aspirin lowers infarction risk by a third."
    doc = f"{head} {middle} {sentences('outro', 30)}"
    at = doc.index(middle)
    window = (at + 4, at + len(middle) - 10)  # a token window cut mid-sentence
    results = [result(0, 2.0, doc, span=window), result(1, 1.0, sentences("other", 3))]
    packed = ContextPacker(200, tokenizer=words).pack("q", results, ids=["d0", "d1"])
    first = packed.passages[0]
    assert first.from_window and first.source_id == "d0"
    assert doc[first.span[0] : first.span[1]] == first.text
    assert first.text.startswith(middle)  # widened to the whole sentence
    assert "intro" not in packed.text.split("[2]")[0]
    assert f"[1] (source: d0)\n{first.text}" in packed.text
    second = packed.passages[1]
    assert not second.from_window and second.span == (0, len(results[1].document))


def test_without_a_span_the_document_is_cut_at_a_sentence_boundary() -> None:
    doc = sentences("long", 40)
    packed = ContextPacker(60, tokenizer=words).pack("q", [result(0, 1.0, doc)])
    (p,) = packed.passages
    assert p.span[0] == 0 and p.text.endswith("here.") and p.trimmed
    assert p.span[1] in sentence_ends(doc)
    assert doc.startswith(p.text)


def test_document_choice_ignores_the_span() -> None:
    doc = sentences("a", 10) + " Target sentence here. " + sentences("b", 10)
    at = doc.index("Target")
    packed = ContextPacker(1000, tokenizer=words, passage="document").pack(
        "q", [result(0, 1.0, doc, span=(at, at + 20))]
    )
    assert packed.passages[0].span == (0, len(doc)) and not packed.passages[0].from_window


# -- acceptance edge cases ----------------------------------------------------------------------
def test_inputs_are_never_mutated() -> None:
    results = [result(i, float(i % 3), sentences(str(i), 5)) for i in range(8)]
    snapshot = copy.deepcopy(results)
    ids = [f"id{i}" for i in range(8)]
    ContextPacker(40, tokenizer=words, order="lost_in_the_middle").pack("q", results, ids=ids)
    assert results == snapshot
    assert ids == [f"id{i}" for i in range(8)]


def test_empty_input_gives_an_empty_context() -> None:
    packed = ContextPacker(100, tokenizer=words).pack("q", [])
    assert packed == PackedContext(text="", passages=(), n_tokens=0, budget_tokens=100)
    assert not packed.trimmed


def test_a_budget_smaller_than_any_passage_keeps_the_best_trimmed() -> None:
    results = [result(i, 5.0 - i, sentences(f"d{i}", 12)) for i in range(4)]
    packed = ContextPacker(15, tokenizer=words).pack("q", results)
    (p,) = packed.passages
    assert p.index == 0 and p.trimmed and packed.trimmed
    assert packed.n_tokens == words(packed.text) <= 15
    assert [d.reason for d in packed.dropped] == ["budget"] * 3
    # even inside one sentence: cut at a word
    tiny = ContextPacker(6, tokenizer=words).pack("q", results)
    assert tiny.passages[0].trimmed and words(tiny.text) <= 6
    assert results[0].document.startswith(tiny.passages[0].text)


# -- cut-offs and order -------------------------------------------------------------------------
def test_min_score_and_score_gap() -> None:
    results = [result(i, s, sentences(str(i), 2)) for i, s in enumerate([4.0, 3.5, 1.0, -2.0])]
    packed = ContextPacker(1000, tokenizer=words, min_score=0.0, max_score_gap=2.0).pack(
        "q", results
    )
    assert [p.index for p in packed.passages] == [0, 1]
    assert [(d.index, d.reason) for d in packed.dropped] == [(2, "score_gap"), (3, "min_score")]


@pytest.mark.parametrize(
    ("order", "expected"),
    [
        ("score", [0, 1, 2, 3, 4]),
        ("lost_in_the_middle", [0, 2, 4, 3, 1]),
        ("source", [0, 1, 2, 3, 4]),
    ],
)
def test_orders(order: Any, expected: list[int]) -> None:
    # input order 4, 3, 2, 1, 0 with scores making index 0 the best
    results = [result(i, 10.0 - i, sentences(f"s{i}", 2)) for i in range(5)]
    packed = ContextPacker(1000, tokenizer=words, order=order).pack("q", results[::-1])
    assert [p.index for p in packed.passages] == expected
    assert [p.citation for p in packed.passages] == [1, 2, 3, 4, 5]
    for p in packed.passages:
        assert packed.text.count(f"[{p.citation}] (source: {p.index})") == 1


def test_lost_in_the_middle_matches_langchain_long_context_reorder() -> None:
    pytest.importorskip("langchain_community")
    from langchain_community.document_transformers import LongContextReorder
    from langchain_core.documents import Document

    results = [result(i, 10.0 - i, sentences(f"s{i}", 2)) for i in range(7)]
    packed = ContextPacker(1000, tokenizer=words, order="lost_in_the_middle").pack("q", results)
    theirs = LongContextReorder().transform_documents(
        [Document(page_content=r.document, metadata={"i": r.index}) for r in results]
    )
    assert [p.index for p in packed.passages] == [d.metadata["i"] for d in theirs]


# -- tokenizers and arguments -------------------------------------------------------------------
def test_tokenizer_forms(minilm_path: Path, hf_tokenizer: Any) -> None:
    text = "Aspirin lowers the risk of myocardial infarction."
    expected = hf_count(hf_tokenizer, text)
    assert ContextPacker(10, tokenizer=minilm_path).count_tokens(text) == expected
    assert ContextPacker(10, tokenizer=hf_tokenizer).count_tokens(text) == expected
    assert (
        ContextPacker(10, tokenizer=hf_tokenizer.backend_tokenizer).count_tokens(text) == expected
    )

    class Encoding:  # tiktoken-like
        def encode(self, text: str) -> list[int]:
            return [0] * len(text.split())

    assert ContextPacker(10, tokenizer=Encoding()).count_tokens(text) == 7
    assert ContextPacker(10, tokenizer=lambda t: t.split()).count_tokens(text) == 7
    with pytest.raises(InvalidInputError, match="token counter returned"):
        ContextPacker(10, tokenizer=lambda t: "x").count_tokens(text)
    with pytest.raises(InvalidInputError, match="tokenizer must be"):
        ContextPacker(10, tokenizer=42)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"budget_tokens": 0}, "budget_tokens"),
        ({"order": "random"}, "order"),
        ({"passage": "best"}, "passage"),
        ({"template": "[{n}]"}, "text"),
        ({"template": "{text} {title}"}, "cannot be filled"),
        ({"dedup_threshold": 0.0}, "dedup_threshold"),
        ({"max_passage_share": 2.0}, "max_passage_share"),
        ({"min_score": float("nan")}, "min_score"),
    ],
)
def test_bad_arguments(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        ContextPacker(**{"tokenizer": words, **kwargs})


def test_bad_inputs() -> None:
    packer = ContextPacker(100, tokenizer=words)
    with pytest.raises(InvalidInputError, match="RerankResult"):
        packer.pack("q", ["text"])  # type: ignore[list-item]
    with pytest.raises(InvalidInputError, match="ids"):
        packer.pack("q", [result(3, 1.0, "a b c")], ids=["x"])


def test_sentence_boundaries() -> None:
    text = "Dr. Smith et al. found it (Fig. 2). Then J. Doe agreed! Was it 3.5 mg? Yes.\nNext line"
    ends = sentence_ends(text)
    assert [text[:e].rsplit(" ", 1)[-1] for e in ends] == ["2).", "agreed!", "mg?", "Yes.", "line"]
    assert [text[s : s + 4] for s in sentence_starts(text)] == [
        "Dr. ",
        "Then",
        "Was ",
        "Yes.",
        "Next",
    ]


def test_a_passage_cut_short_at_a_sentence_is_cut_at_a_word_instead() -> None:
    long_sentence = "Title. " + " ".join(f"word{i}" for i in range(200)) + "."
    results = [result(0, 2.0, sentences("best", 3)), result(1, 1.0, long_sentence)]
    packed = ContextPacker(120, tokenizer=words, min_passage_tokens=20).pack("q", results)
    second = packed.passages[1]
    assert second.index == 1 and second.trimmed
    assert second.n_tokens >= 20  # not just "Title."
    assert second.text.startswith("Title. word0 word1")
    assert packed.n_tokens <= 120
