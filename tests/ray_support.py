"""Shared by the Ray tests: a tiny cross-encoder whose scores depend on the text."""

from __future__ import annotations

from pathlib import Path


def build_tiny_text_cross_encoder(folder: Path, vocab_model: Path, *, seed: int = 0) -> Path:
    """A 2-layer, 32-wide BERT cross-encoder (random weights) with a real 30k-word tokenizer
    (all-MiniLM-L6-v2's), so that different texts get different scores.

    ``crossrank.testing.build_tiny_cross_encoder``'s tokenizer knows a few dozen words only,
    which makes its scores depend on little more than the length of the texts.
    """
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(str(vocab_model))
    tokenizer.save_pretrained(str(folder))
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
        num_labels=1,
        initializer_range=0.2,
    )
    torch.manual_seed(seed)
    BertForSequenceClassification(config).save_pretrained(str(folder))
    return folder
