from __future__ import annotations

from pathlib import Path

import pytest
from tokenizers import Tokenizer

from crossrank.engine.pairs import PairTemplate, plan_pairs, window_starts
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


def test_plan_policies(minilm_tok: Tokenizer) -> None:
    template = PairTemplate.from_tokenizer(minilm_tok)
    query = "does aspirin prevent cancer"
    short, long = "aspirin works", " ".join(["word"] * 60)
    kwargs = {"max_length": 32, "query_max_tokens": 8, "stride": 4}
    q_len = len(minilm_tok.encode(query, add_special_tokens=False).ids)
    budget = 32 - 3 - q_len

    windows, plans, cut = plan_pairs(
        minilm_tok, template, query, [short, long], overflow="truncate", **kwargs
    )
    assert cut == 0
    assert [p.truncated for p in plans] == [False, True]
    assert [p.n_windows for p in plans] == [1, 1]
    assert all(len(w.ids) <= 32 for w in windows)
    assert plans[1].n_tokens == 60

    windows, plans, _ = plan_pairs(
        minilm_tok, template, query, [short, long], overflow="chunk", **kwargs
    )
    assert plans[1].truncated is False
    assert plans[1].n_windows == len(window_starts(60, budget, 4)) > 1
    assert [w.doc for w in windows].count(1) == plans[1].n_windows
    assert all(len(w.ids) <= 32 for w in windows)

    with pytest.raises(DocumentTooLongError, match="document 7 has 60 tokens") as info:
        plan_pairs(
            minilm_tok, template, query, [short, long], overflow="error", indices=[3, 7], **kwargs
        )
    assert (info.value.index, info.value.n_tokens, info.value.budget) == (7, 60, budget)


def test_long_query_keeps_at_most_its_budget(minilm_tok: Tokenizer) -> None:
    template = PairTemplate.from_tokenizer(minilm_tok)
    query = " ".join(["question"] * 20)
    windows, _, cut = plan_pairs(
        minilm_tok,
        template,
        query,
        ["doc"],
        max_length=64,
        query_max_tokens=8,
        overflow="truncate",
        stride=None,
    )
    assert cut == 12
    assert windows[0].ids[1:9] == [minilm_tok.token_to_id("question")] * 8
