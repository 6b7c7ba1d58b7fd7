from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from crossrank import Reranker

WORDS = "vitamin cancer risk cells gene protein blood mice human study effect levels".split()


def _calls(seed: int) -> list[tuple[str, tuple]]:  # type: ignore[type-arg]
    rng = random.Random(seed)

    def text(n: int) -> str:
        return " ".join(rng.choice(WORDS) for _ in range(n))

    calls: list[tuple[str, tuple]] = []  # type: ignore[type-arg]
    for _ in range(6):
        kind = rng.choice(["rerank", "many", "pairs"])
        if kind == "rerank":
            calls.append(("rerank", (text(4), [text(rng.randint(0, 40)) for _ in range(7)])))
        elif kind == "many":
            calls.append(("many", ([text(3), text(5)], [[text(9)] * 3, [text(30), text(2)]])))
        else:
            calls.append(("pairs", ([(text(3), text(rng.randint(1, 50))) for _ in range(5)],)))
    return calls


def _run(engine: Reranker, call: tuple[str, tuple]) -> object:  # type: ignore[type-arg]
    kind, args = call
    if kind == "rerank":
        return engine.rerank(*args, top_n=5)
    if kind == "many":
        return engine.rerank_many(*args)
    return engine.score_pairs(*args)


def test_eight_threads_get_exactly_the_single_threaded_scores(tiny_model: Path) -> None:
    engine = Reranker(tiny_model, max_length=48, overflow="chunk", cache_size=0)
    work = [call for seed in range(8) for call in _calls(seed)]
    expected = [_run(engine, call) for call in work]
    for _ in range(3):
        with ThreadPoolExecutor(max_workers=8) as pool:
            got = list(pool.map(lambda c: _run(engine, c), work))
        assert got == expected
