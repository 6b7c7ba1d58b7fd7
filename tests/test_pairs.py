from __future__ import annotations

from pathlib import Path

import pytest
from tokenizers import Tokenizer

from crossrank.engine.geometry import PairGeometry
from crossrank.engine.pairs import DocPlan, PairTemplate, plan_pairs, window_starts
from crossrank.errors import DocumentTooLongError


def _tokenizer(folder: Path) -> Tokenizer:
    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tok.no_truncation()
    tok.no_padding()
    return tok


@pytest.fixture(scope="module")
def minilm_tok(minilm_path: Path) -> Tokenizer:
    return _tokenizer(minilm_path)


@pytest.mark.parametrize(
    ("query", "doc"),
    [
        ("what is love?", "Love is a feeling."),
        ("Vitamin D and cancer", "A 12-year cohort (n=3,456) found no effect; p < 0.05."),
        ("", "only a document"),
        ("only a query", ""),
    ],
)
def test_template_builds_what_the_tokenizer_builds(
    minilm_tok: Tokenizer, query: str, doc: str
) -> None:
    template = PairTemplate.from_tokenizer(minilm_tok)
    q = minilm_tok.encode(query, add_special_tokens=False).ids
    d = minilm_tok.encode(doc, add_special_tokens=False).ids
    expected = minilm_tok.encode(query, doc, add_special_tokens=True)
    assert template.build(q, d) == (expected.ids, expected.type_ids)
    assert template.n_special == 3


@pytest.mark.parametrize(
    ("n", "budget", "stride"), [(10, 10, 2), (11, 10, 2), (100, 10, 3), (1, 5, 0)]
)
def test_windows_cover_the_document(n: int, budget: int, stride: int) -> None:
    starts = window_starts(n, budget, stride)
    covered = set()
    for a, b in zip(starts, starts[1:], strict=False):
        assert b - a == budget - stride  # consecutive windows overlap by `stride`
    for s in starts:
        covered.update(range(s, min(s + budget, n)))
    assert covered == set(range(n))
    assert starts[-1] < n or n == 0
    assert len(starts) == (1 if n <= budget else 1 + -(-(n - budget) // (budget - stride)))


def _geometry(max_length: int, query_max_tokens: int, stride: int | None) -> PairGeometry:
    return PairGeometry(max_length, 3, query_max_tokens, stride)


def test_plan_policies(minilm_tok: Tokenizer) -> None:
    template = PairTemplate.from_tokenizer(minilm_tok)
    query = "does aspirin prevent cancer"
    short, long = "aspirin works", " ".join(["word"] * 60)
    geometry = _geometry(32, 8, 4)
    q_len = len(minilm_tok.encode(query, add_special_tokens=False).ids)
    budget = 32 - 3 - q_len

    windows, plans = plan_pairs(
        minilm_tok, template, geometry, query, [short, long], overflow="truncate"
    )
    assert [p.truncated for p in plans] == [False, True]
    assert [p.query_cut for p in plans] == [False, False]
    assert [w.doc for w in windows] == [0, 1]
    assert all(len(w.ids) <= 32 for w in windows)
    # Spans: the whole short document; the kept head of the long one.
    assert windows[0].span == (0, len(short))
    assert windows[1].span == (0, len(" ".join(["word"] * budget)))

    windows, plans = plan_pairs(
        minilm_tok, template, geometry, query, [short, long], overflow="chunk"
    )
    assert plans[1].truncated is False
    n_windows = len(window_starts(60, budget, 4))
    assert [w.doc for w in windows].count(1) == n_windows > 1
    assert all(len(w.ids) <= 32 for w in windows)
    # Each window's span holds exactly the words its tokens hold.
    for window in windows[1:]:
        start, end = window.span
        words = long[start:end].split()
        assert len(words) == len(window.ids) - 3 - q_len
    assert windows[-1].span[1] == len(long)

    with pytest.raises(DocumentTooLongError, match="document 7 has 60 tokens") as info:
        plan_pairs(
            minilm_tok, template, geometry, query, [short, long], overflow="error", indices=[3, 7]
        )
    assert (info.value.index, info.value.n_tokens, info.value.budget) == (7, 60, budget)


def test_long_query_is_cut_only_when_the_pair_does_not_fit(minilm_tok: Tokenizer) -> None:
    template = PairTemplate.from_tokenizer(minilm_tok)
    question = minilm_tok.token_to_id("question")
    query = " ".join(["question"] * 20)
    geometry = _geometry(64, 8, None)
    # A short document leaves room: the 20-token query is kept whole (as predict would).
    windows, plans = plan_pairs(minilm_tok, template, geometry, query, ["doc"], overflow="truncate")
    assert plans[0].query_cut is False
    assert windows[0].ids[1:21] == [question] * 20
    # A 50-token document: the query keeps what the document leaves (64-3-50 = 11 >= 8).
    doc = " ".join(["word"] * 50)
    windows, plans = plan_pairs(minilm_tok, template, geometry, query, [doc], overflow="truncate")
    assert plans[0] == DocPlan(truncated=False, query_cut=True)
    assert windows[0].ids[1:12] == [question] * 11
    assert len(windows[0].ids) == 64
    # A long document: the query keeps query_max_tokens, the document the rest.
    doc = " ".join(["word"] * 200)
    windows, plans = plan_pairs(minilm_tok, template, geometry, query, [doc], overflow="truncate")
    assert plans[0] == DocPlan(truncated=True, query_cut=True)
    assert windows[0].ids[1:10] == [question] * 8 + [minilm_tok.token_to_id("[SEP]")]
