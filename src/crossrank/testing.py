"""Test helpers for crossrank and its users: tiny real models built offline, and a fake engine.

The tiny models are real transformers (random weights, fixed seed): they exercise
tokenization, batching and the forward pass exactly as a trained model would, in milliseconds.
:class:`FakeReranker` is a deterministic stand-in for :class:`crossrank.Reranker` for code that
takes an engine (the LlamaIndex and LangChain adapters), where the model is not under test.
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crossrank.ranking.results import RankOptions, rank_results
from crossrank.types import RankArgs, RerankResult

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = [
    "FakeReranker",
    "build_tiny_biencoder",
    "build_tiny_cross_encoder",
    "skip_gpu_tests_without_cuda",
]


def skip_gpu_tests_without_cuda(items: Sequence[Any]) -> None:
    """For a ``pytest_collection_modifyitems`` hook: tests marked ``gpu`` are skipped when
    torch sees no CUDA device."""
    import pytest

    try:
        import torch

        has_cuda = bool(torch.cuda.is_available())
    except ImportError:
        has_cuda = False
    if has_cuda:
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


class FakeReranker:
    """A deterministic :class:`~crossrank.SupportsRerank`: a document's score is how many of
    the query's words it contains, minus a thousandth of its length (so ties are rare). It
    ranks exactly as the engine does (:func:`crossrank.ranking.rank_results`) and records
    every call in ``calls``."""

    model_name = "fake-cross-encoder"

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    @staticmethod
    def score(query: str, document: str) -> float:
        """How many of the query's words the document holds, minus a thousandth of its length."""
        words = set(query.lower().split())
        return float(sum(w in words for w in document.lower().split())) - len(document) / 1000

    def rerank(
        self,
        query: str,
        documents: Sequence[str],
        *,
        retrieval_scores: Sequence[float] | None = None,
        **options: Unpack[RankArgs],
    ) -> list[RerankResult]:
        """Rank by :meth:`score`, exactly as the engine ranks its scores; record the call."""
        opts = RankOptions.parse(options)
        dense = opts.check_request(retrieval_scores, len(documents))
        self.calls.append(
            {
                "method": "rerank",
                "query": query,
                "documents": list(documents),
                "retrieval_scores": retrieval_scores,
                "top_n": opts.top_n,
                "fusion": opts.fusion,
                "alpha": opts.alpha,
                "min_score": opts.min_score,
            }
        )
        scores = [self.score(query, d) for d in documents]
        return rank_results(documents, scores, opts, retrieval_scores=dense)

    async def arerank(
        self,
        query: str,
        documents: Sequence[str],
        *,
        retrieval_scores: Sequence[float] | None = None,
        **options: Unpack[RankArgs],
    ) -> list[RerankResult]:
        """:meth:`rerank`, recorded as ``"arerank"``."""
        results = self.rerank(query, documents, retrieval_scores=retrieval_scores, **options)
        self.calls[-1]["method"] = "arerank"
        return results


_WORDS = (
    "the a an of to in and or is are was were be been for with on at by from as that this it "
    "not no yes what which who how why when where do does did can cell cells gene genes protein "
    "cancer risk patients study studies effect effects increase decrease disease blood vitamin "
    "treatment human mice dna rna expression levels higher lower associated"
).split()


def _vocab() -> list[str]:
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = list(string.ascii_lowercase + string.digits + string.punctuation)
    pieces = [f"##{c}" for c in string.ascii_lowercase + string.digits]
    return specials + chars + pieces + _WORDS


def _write_tokenizer(folder: Path, max_length: int) -> None:
    import inspect

    from transformers import BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    vocab_file = folder / "vocab.txt"
    vocab_file.write_text("\n".join(_vocab()) + "\n", encoding="utf-8")
    # transformers 5 takes the vocabulary itself and ignores ``vocab_file`` (leaving a
    # five-token fallback vocabulary); transformers 4 reads the file.
    if "vocab" in inspect.signature(BertTokenizerFast.__init__).parameters:
        vocab = {token: i for i, token in enumerate(_vocab())}
        tokenizer = BertTokenizerFast(vocab=vocab, model_max_length=max_length)
    else:
        tokenizer = BertTokenizerFast(vocab_file=str(vocab_file), model_max_length=max_length)
    tokenizer.save_pretrained(str(folder))


def _config(num_labels: int, max_position_embeddings: int) -> object:
    from transformers import BertConfig

    return BertConfig(
        vocab_size=len(_vocab()),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=max_position_embeddings,
        num_labels=num_labels,
    )


def build_tiny_cross_encoder(
    folder: str | Path, *, num_labels: int = 1, seed: int = 0, max_position_embeddings: int = 512
) -> Path:
    """Write a 2-layer BERT sequence classifier and its tokenizer to ``folder``; return it."""
    import torch
    from transformers import BertForSequenceClassification

    path = Path(folder)
    _write_tokenizer(path, max_position_embeddings)
    torch.manual_seed(seed)
    model = BertForSequenceClassification(_config(num_labels, max_position_embeddings))
    model.save_pretrained(str(path))
    return path


def build_tiny_biencoder(folder: str | Path, *, seed: int = 0) -> Path:
    """Write a 2-layer BERT sentence-transformers bi-encoder (mean pooling) to ``folder``."""
    import torch
    from sentence_transformers import SentenceTransformer, models
    from transformers import BertModel

    path = Path(folder)
    backbone = path / "_backbone"
    _write_tokenizer(backbone, 512)
    torch.manual_seed(seed)
    BertModel(_config(1, 512)).save_pretrained(str(backbone))
    transformer = models.Transformer(str(backbone), max_seq_length=128)
    pooling = models.Pooling(transformer.get_word_embedding_dimension(), pooling_mode="mean")
    SentenceTransformer(modules=[transformer, pooling], device="cpu").save(str(path))
    return path
