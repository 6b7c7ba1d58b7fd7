"""Tiny real models built offline, for tests and examples.

They are real transformers (random weights, fixed seed): they exercise tokenization,
batching and the forward pass exactly as a trained model would, in milliseconds.
"""

from __future__ import annotations

import string
from pathlib import Path

__all__ = ["build_tiny_biencoder", "build_tiny_cross_encoder"]

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
    from transformers import BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    vocab_file = folder / "vocab.txt"
    vocab_file.write_text("\n".join(_vocab()) + "\n", encoding="utf-8")
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
