"""Model folders as users have them: changed on disk, incomplete, or damaged.

Every case uses a real tiny model folder (``build_tiny_cross_encoder``) that is then changed
the way a copy, a crash or a careless edit changes it.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from crossrank import InvalidModelError, ModelNotFoundError, Reranker
from crossrank.engine.loading import clear_registry, load_model, model_identity
from crossrank.testing import build_tiny_cross_encoder

PAIRS = [
    ("does vitamin d lower cancer risk", "vitamin d levels and cancer risk in patients"),
    ("does vitamin d lower cancer risk", "blood pressure treatment in mice"),
    ("genes in cells", "how genes are expressed in human cells"),
    ("genes in cells", "protein"),
]
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "special_tokens_map.json",
)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return build_tiny_cross_encoder(tmp_path / "model", seed=5)


def _copy_keeping_stat(source: Path, target: Path) -> None:
    """Overwrite ``target`` with ``source``'s bytes, keeping ``target``'s size and mtime
    (what ``cp -p`` or ``rsync -a`` of a retrained model of the same shape does)."""
    before = target.stat()
    shutil.copyfile(source, target)
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = target.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)


# -- the registry follows the folder's content ------------------------------------------------
def test_new_weights_with_the_same_size_and_mtime_are_loaded_again(
    folder: Path, tmp_path: Path
) -> None:
    other = build_tiny_cross_encoder(tmp_path / "other", seed=6)
    first = Reranker(folder, device="cpu", activation="raw")
    old_scores = first.score_pairs(PAIRS)
    _copy_keeping_stat(other / "model.safetensors", folder / "model.safetensors")
    second = Reranker(folder, device="cpu", activation="raw")
    assert second._loaded is not first._loaded
    expected = Reranker(other, device="cpu", activation="raw").score_pairs(PAIRS)
    assert second.score_pairs(PAIRS) == pytest.approx(expected, abs=1e-6)
    assert second.score_pairs(PAIRS) != pytest.approx(old_scores, abs=1e-3)
    # Unchanged files: the same loaded model, however the folder is named.
    assert Reranker(folder, device="cpu")._loaded is second._loaded
    assert Reranker(folder / ".." / "model", device="cpu")._loaded is second._loaded


def test_identity_is_the_folder_content(folder: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    assert model_identity(str(folder)) == model_identity(str(copy))
    assert model_identity(str(folder)).startswith("sha256:")
    (copy / "README.md").write_text("a model card edit changes no score", encoding="utf-8")
    assert model_identity(str(copy)) == model_identity(str(folder))
    other = build_tiny_cross_encoder(tmp_path / "other", seed=6)
    _copy_keeping_stat(other / "model.safetensors", copy / "model.safetensors")
    assert model_identity(str(copy)) != model_identity(str(folder))
    assert model_identity("org/some-model", "v2") == "org/some-model@v2"
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        model_identity(str(tmp_path / "absent"))


# -- the tokenizer must fit the model ---------------------------------------------------------
def test_folder_without_its_tokenizer_is_refused(folder: Path) -> None:
    # Without these files transformers builds a 5-token fallback vocabulary: every word is
    # [UNK] and every document scores the same.
    for name in TOKENIZER_FILES:
        (folder / name).unlink(missing_ok=True)
    with pytest.raises(InvalidModelError, match=r"tokenizer has 5 tokens .* embeds 174") as info:
        Reranker(folder, device="cpu")
    assert "tokenizer files" in str(info.value)


def test_tokenizer_of_a_larger_vocabulary_is_refused(folder: Path) -> None:
    from transformers import BertTokenizerFast

    big = BertTokenizerFast.from_pretrained(str(folder))
    big.add_tokens([f"extra{i}" for i in range(40)])
    big.save_pretrained(str(folder))
    with pytest.raises(InvalidModelError, match=r"tokenizer has 213 tokens .* only 174"):
        Reranker(folder, device="cpu")


def test_the_tiny_model_tokenizes_words_not_unknowns(tiny_model: Path) -> None:
    loaded = load_model(str(tiny_model), device="cpu")
    ids = loaded.tokenizer.encode("vitamin d cancer", add_special_tokens=False).ids
    unk = loaded.cross_encoder.tokenizer.unk_token_id
    assert ids and unk not in ids
    scores = Reranker(tiny_model, device="cpu").score_pairs(PAIRS)
    assert len(set(scores)) == len(scores)


# -- damaged folders --------------------------------------------------------------------------
def _truncate(folder: Path) -> None:
    path = folder / "model.safetensors"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _garbage_weights(folder: Path) -> None:
    (folder / "model.safetensors").write_bytes(os.urandom(4096))


def _bad_json(folder: Path) -> None:
    text = (folder / "config.json").read_text(encoding="utf-8")
    (folder / "config.json").write_text(text[: len(text) // 2], encoding="utf-8")


def _unknown_type(folder: Path) -> None:
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    config["model_type"] = "bert-from-the-future"
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")


def _no_weights(folder: Path) -> None:
    (folder / "model.safetensors").unlink()


def _nan_weights(folder: Path) -> None:
    import torch
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(folder / "model.safetensors"))
    name = next(k for k in tensors if k.endswith("classifier.weight"))
    tensors[name] = torch.full_like(tensors[name], float("nan"))
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (_truncate, r"model\.safetensors is damaged \(truncated"),
        (_garbage_weights, r"model\.safetensors is damaged"),
        (_bad_json, r"config\.json is damaged \(not valid JSON"),
        (_unknown_type, r"model_type 'bert-from-the-future'.*does not know"),
        (_no_weights, r"no weights \(model\.safetensors or pytorch_model\.bin\)"),
        (_nan_weights, r"NaN or infinite values \(first: classifier\.weight\)"),
    ],
    ids=["truncated", "garbage", "bad-config", "unknown-type", "no-weights", "nan-weights"],
)
def test_damaged_folder_says_which_file_is_at_fault(
    folder: Path, damage: object, expected: str
) -> None:
    damage(folder)  # type: ignore[operator]
    clear_registry()
    with pytest.raises(InvalidModelError, match=expected) as info:
        Reranker(folder, device="cpu")
    message = str(info.value)
    assert str(folder) in message
    assert "network" not in message
    assert not isinstance(info.value, ModelNotFoundError)


def test_damage_reported_by_transformers_is_still_an_invalid_model(folder: Path) -> None:
    # A whole, well-formed file with the wrong tensors: only transformers can tell.
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(folder / "model.safetensors"))
    key = next(k for k in tensors if k.endswith("word_embeddings.weight"))
    tensors[key] = tensors[key][:, :7].contiguous()
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(InvalidModelError, match="damaged or incomplete") as info:
        Reranker(folder, device="cpu")
    assert "network" not in str(info.value)


def test_a_hub_id_that_cannot_be_fetched_keeps_the_offline_hint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError, match="Without network access"):
        Reranker("crossrank-tests/no-such-model", device="cpu")
