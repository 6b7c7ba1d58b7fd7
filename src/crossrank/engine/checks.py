"""Checks that a model folder is whole and that its parts fit together.

transformers reads whatever a folder holds: without its tokenizer files a BERT folder gets
a fallback tokenizer of a handful of tokens (every document then scores the same, without a
warning), truncated weights raise safetensors' own errors, an unreadable ``config.json`` a
bare ``ValueError``. These checks turn each case into an
:class:`~crossrank.errors.InvalidModelError` that names the file at fault and what to do.
They read headers only; the weights themselves are read once, by transformers.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crossrank.errors import InvalidModelError, ModelNotFoundError

if TYPE_CHECKING:
    import torch
    from sentence_transformers import CrossEncoder

__all__ = ["check_folder", "check_tokenizer", "check_weights", "open_cross_encoder"]

_REDO = "re-copy or re-train the model"
# The largest safetensors header the safetensors library itself accepts.
_MAX_HEADER = 100_000_000
# A tokenizer may cover a little less than the embedding matrix (vocabularies padded to a
# multiple of 8 or 64); one covering less than this share of it is not the model's own.
_MIN_VOCAB_SHARE = 0.5


def _damaged(folder: Path, file: str, why: str) -> InvalidModelError:
    return InvalidModelError(
        f"model folder {folder}: the folder's {file} is damaged ({why}); {_REDO}"
    )


def check_folder(name: str, folder: Path, *, trust_remote_code: bool) -> None:
    """Check a local model folder before transformers reads it: a readable ``config.json``
    with a ``model_type`` this transformers knows, and whole weight files."""
    if not (folder / "config.json").is_file():
        what = "folder has no config.json" if folder.is_dir() else "folder does not exist"
        msg = f"model {name!r} not found: the {what}; pass a cross-encoder model folder or hub id"
        raise ModelNotFoundError(msg)
    config = _read_config(folder)
    _check_model_type(folder, config, trust_remote_code=trust_remote_code)
    _check_weight_files(folder)


def _read_config(folder: Path) -> dict[str, Any]:
    try:
        data = json.loads((folder / "config.json").read_bytes())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _damaged(folder, "config.json", f"not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise _damaged(folder, "config.json", "not a JSON object")
    return data


def _check_model_type(folder: Path, config: dict[str, Any], *, trust_remote_code: bool) -> None:
    import transformers
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    model_type = config.get("model_type")
    if model_type is None or model_type in CONFIG_MAPPING:
        return
    if "auto_map" in config:
        if trust_remote_code:
            return
        msg = (
            f"model folder {folder}: config.json names model_type {model_type!r}, whose code "
            "ships with the model; read that code, then pass trust_remote_code=True to run it"
        )
        raise InvalidModelError(msg)
    msg = (
        f"model folder {folder}: config.json names model_type {model_type!r}, which "
        f"transformers {transformers.__version__} does not know. If the model is newer than "
        "this transformers, upgrade it (pip install -U transformers); if the name is wrong, "
        f"config.json is damaged: {_REDO}"
    )
    raise InvalidModelError(msg)


def _weight_files(folder: Path) -> list[Path]:
    """The weight files the folder declares: single files, or the shards an index lists."""
    files: list[Path] = []
    for single, index in (
        ("model.safetensors", "model.safetensors.index.json"),
        ("pytorch_model.bin", "pytorch_model.bin.index.json"),
    ):
        if (folder / index).is_file():
            try:
                mapping = json.loads((folder / index).read_bytes())["weight_map"]
                shards = sorted({str(v) for v in mapping.values()})
            except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
                raise _damaged(folder, index, f"not a weight index: {exc}") from exc
            for shard in shards:
                if not (folder / shard).is_file():
                    msg = f"model folder {folder}: {index} lists {shard}, which is missing; {_REDO}"
                    raise InvalidModelError(msg)
            files.extend(folder / shard for shard in shards)
            break
        if (folder / single).is_file():
            files.append(folder / single)
            break
    return files


def _check_weight_files(folder: Path) -> None:
    files = _weight_files(folder)
    if not files:
        msg = (
            f"model folder {folder} has a config.json but no weights (model.safetensors or "
            f"pytorch_model.bin): the copy is incomplete; {_REDO}"
        )
        raise InvalidModelError(msg)
    for file in files:
        if file.suffix == ".safetensors":
            _check_safetensors(folder, file)
        else:
            _check_torch_zip(folder, file)


def _check_safetensors(folder: Path, file: Path) -> None:
    """The header parses and the tensors it describes fill the file exactly (safetensors'
    own layout check, without reading the tensors)."""
    name = file.relative_to(folder).as_posix()
    size = file.stat().st_size
    with file.open("rb") as handle:
        head = handle.read(8)
        if len(head) < 8:
            raise _damaged(folder, name, f"{size} bytes, shorter than a header")
        length = int.from_bytes(head, "little")
        if length > min(size - 8, _MAX_HEADER):
            raise _damaged(folder, name, "its header is cut off or not a safetensors header")
        try:
            header = json.loads(handle.read(length))
            ends = [
                int(info["data_offsets"][1])
                for key, info in header.items()
                if key != "__metadata__"
            ]
        except (UnicodeDecodeError, ValueError, KeyError, TypeError, IndexError) as exc:
            raise _damaged(folder, name, f"unreadable header: {exc}") from exc
    expected = 8 + length + max(ends, default=0)
    if expected != size:
        how = "truncated" if size < expected else "longer than its header says"
        raise _damaged(folder, name, f"{how}: {size} bytes, the header describes {expected}")


def _check_torch_zip(folder: Path, file: Path) -> None:
    """A ``torch.save`` zip archive must have its directory (the last thing written); a
    legacy (pre-zip) pickle file is left to torch."""
    with file.open("rb") as handle:
        is_zip = handle.read(4) == b"PK\x03\x04"
    if not is_zip:
        return
    try:
        with zipfile.ZipFile(file) as archive:
            archive.infolist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise _damaged(folder, file.relative_to(folder).as_posix(), str(exc)) from exc


def open_cross_encoder(name: str, folder: Path | None, **kwargs: Any) -> CrossEncoder:
    """``CrossEncoder(name, **kwargs)`` with its errors made crossrank's: a hub model that
    cannot be fetched → :class:`ModelNotFoundError` (with the offline hint); a local
    folder that does not load → :class:`InvalidModelError` (the folder is at fault)."""
    from sentence_transformers import CrossEncoder

    try:
        return CrossEncoder(str(folder) if folder is not None else name, **kwargs)
    except OSError as exc:
        if folder is not None:
            msg = (
                f"could not load the model folder {folder}: {exc}. The folder needs "
                f"config.json, the weights and the tokenizer files; {_REDO}"
            )
            raise InvalidModelError(msg) from exc
        msg = (
            f"could not load model {name!r}: {exc}. Without network access pass a local model "
            "folder, or set CROSSRANK_RERANKER to one"
        )
        raise ModelNotFoundError(msg) from exc
    except (ImportError, MemoryError):
        raise  # a missing package or memory: not the folder's fault
    except Exception as exc:  # safetensors, tokenizers and transformers raise untyped errors
        if folder is None or "out of memory" in str(exc):
            raise
        msg = (
            f"could not load the model folder {folder} ({type(exc).__name__}: {exc}); the "
            f"folder is damaged or incomplete: {_REDO}"
        )
        raise InvalidModelError(msg) from exc


def check_tokenizer(name: str, tokenizer: Any, config: Any, folder: Path | None) -> None:
    """Refuse a tokenizer that does not fit the model: more tokens than the embedding
    matrix has rows (ids would index past it), far fewer (not the model's own tokenizer:
    transformers' fallback when the tokenizer files are missing), or special tokens the
    model cannot embed."""
    where = f"model folder {folder}" if folder is not None else f"model {name!r}"
    vocab = int(getattr(config, "vocab_size", 0) or 0)
    size = len(tokenizer)
    fix = (
        "its tokenizer files (tokenizer.json, tokenizer_config.json, vocab.txt or the like) "
        "are missing or belong to another model; copy in the tokenizer files the model was "
        "trained with"
    )
    if vocab and size < vocab * _MIN_VOCAB_SHARE:
        msg = (
            f"{where}: the tokenizer has {size} tokens but the model embeds {vocab} "
            f"(vocab_size): {fix}. Scores would be meaningless (every document alike)"
        )
        raise InvalidModelError(msg)
    if vocab and size > vocab:
        msg = f"{where}: the tokenizer has {size} tokens but the model embeds only {vocab}: {fix}"
        raise InvalidModelError(msg)
    specials = {
        attr: getattr(tokenizer, f"{attr}_id", None)
        for attr in ("cls_token", "sep_token", "bos_token", "eos_token", "pad_token")
        if getattr(tokenizer, attr, None) is not None
    }
    broken = {k: v for k, v in specials.items() if v is None or (vocab and not 0 <= v < vocab)}
    if broken or not ({"cls_token", "sep_token", "bos_token", "eos_token"} & specials.keys()):
        what = ", ".join(f"{k}={v}" for k, v in broken.items()) or "no start or separator token"
        msg = f"{where}: the tokenizer's special tokens do not fit the model ({what}): {fix}"
        raise InvalidModelError(msg)


def check_weights(name: str, model: Any, dtype: torch.dtype, folder: Path | None) -> None:
    """Refuse weights that hold NaN or infinite values (they score NaN for every pair)."""
    import torch

    with torch.inference_mode():
        bad = [n for n, p in model.named_parameters() if not bool(torch.isfinite(p).all())]
    if not bad:
        return
    where = f"model folder {folder}" if folder is not None else f"model {name!r}"
    if dtype != torch.float32:
        hint = f"in {dtype} the values may overflow: load with dtype='float32'; if that fails too, "
    else:
        hint = ""
    msg = (
        f"{where}: {len(bad)} weight tensor(s) hold NaN or infinite values (first: {bad[0]}); "
        f"{hint}the weights are damaged: {_REDO}"
    )
    raise InvalidModelError(msg)
