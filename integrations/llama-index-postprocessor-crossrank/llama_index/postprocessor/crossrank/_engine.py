"""The engine options of :class:`~llama_index.postprocessor.crossrank.CrossrankRerank` that
only LlamaIndex users expect: ``SentenceTransformerRerank``'s ``trust_remote_code``,
``cache_folder`` and ``cross_encoder_kwargs``, and ``device=None``. The common ones live in
:class:`crossrank.adapters.EngineOptions`."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field, field_validator

from crossrank.adapters import EngineOptions
from crossrank.errors import InvalidInputError, ModelNotFoundError

__all__ = ["LlamaIndexEngineOptions"]

# sentence_transformers.CrossEncoder argument -> crossrank.Reranker argument
_CROSS_ENCODER_ARGS = {
    "max_length": "max_length",
    "trust_remote_code": "trust_remote_code",
    "revision": "revision",
    "backend": "backend",
    "model_kwargs": "model_kwargs",
    "processor_kwargs": "tokenizer_kwargs",
    "tokenizer_kwargs": "tokenizer_kwargs",
}
# files of a hub repository the torch engine never reads (other frameworks' exports)
_NOT_NEEDED = ["onnx/*", "openvino/*", "*.onnx", "*.h5", "*.msgpack", "*.ot", "tf_model*"]
_TOP_LEVEL = {"model": "model", "device": "device", "cache_folder": "cache_folder"}


class LlamaIndexEngineOptions(EngineOptions):
    """:class:`crossrank.adapters.EngineOptions` plus ``SentenceTransformerRerank``'s own."""

    _explicit_options: ClassVar[tuple[str, ...]] = (
        *EngineOptions._explicit_options,
        "trust_remote_code",
        "cache_folder",
        "cross_encoder_kwargs",
    )

    trust_remote_code: bool = Field(
        default=False, description="Allow a hub model to run its own modelling code."
    )
    cache_folder: str | Path | None = Field(
        default=None,
        description=(
            "Where a hub model is downloaded to and looked up in (a Hugging Face cache folder); "
            "ignored for a local model folder."
        ),
    )
    cross_encoder_kwargs: dict[str, Any] = Field(
        default_factory=dict,
        description=(
            "SentenceTransformerRerank's sentence_transformers.CrossEncoder arguments: "
            "max_length, trust_remote_code, revision, backend, model_kwargs, processor_kwargs "
            "(tokenizer_kwargs) and num_labels=1 map to the engine; others are refused."
        ),
    )

    @field_validator("device", mode="before")
    @classmethod
    def _none_is_auto(cls, value: object) -> object:
        # SentenceTransformerRerank takes device=None to mean "pick one".
        return "auto" if value is None else value

    def _engine_kwargs(self) -> tuple[dict[str, Any], dict[str, Any]]:
        explicit, extra = super()._engine_kwargs()
        cache_folder = explicit.pop("cache_folder")
        mapped = _map_cross_encoder_kwargs(explicit.pop("cross_encoder_kwargs"))
        for name, value in mapped.items():
            if name in extra or name in self._options_set():
                where = "reranker_kwargs" if name in extra else f"{name}="
                msg = f"cross_encoder_kwargs sets {name}, and so does {where}; give it once"
                raise InvalidInputError(msg)
            (explicit if name in explicit else extra)[name] = value
        if cache_folder is not None:
            explicit["model"] = _from_cache(explicit["model"], cache_folder, extra.get("revision"))
        return explicit, extra


def _map_cross_encoder_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """``CrossEncoder`` keyword arguments as ``crossrank.Reranker`` ones, or a clear error."""
    mapped: dict[str, Any] = {}
    for name, value in kwargs.items():
        if name in _TOP_LEVEL:
            # SentenceTransformerRerank refuses these too
            msg = (
                f"{name!r} should not be given in cross_encoder_kwargs; use the top-level "
                f"{_TOP_LEVEL[name]}= argument instead"
            )
            raise InvalidInputError(msg)
        if name == "num_labels":
            if value != 1:
                msg = f"a reranker has one output (num_labels=1), got num_labels={value!r}"
                raise InvalidInputError(msg)
            continue
        if name == "backend" and value not in ("torch", "onnx"):
            msg = f"backend={value!r} is not available; use 'torch' or 'onnx'"
            raise InvalidInputError(msg)
        target = _CROSS_ENCODER_ARGS.get(name)
        if target is None:
            hint = " (use activation='raw' or 'sigmoid')" if name == "activation_fn" else ""
            msg = (
                f"cross_encoder_kwargs[{name!r}] has no crossrank equivalent{hint}; the keys "
                f"that map are {', '.join(sorted([*_CROSS_ENCODER_ARGS, 'num_labels']))}, and "
                "reranker_kwargs takes any crossrank.Reranker argument"
            )
            raise InvalidInputError(msg)
        if target in mapped:
            msg = f"cross_encoder_kwargs gives {target} twice; use one of its names"
            raise InvalidInputError(msg)
        mapped[target] = value
    return mapped


def _from_cache(model: str | Path | None, cache_folder: str | Path, revision: str | None) -> str:
    """The local folder of hub model ``model`` in ``cache_folder`` (downloaded there when the
    hub is reachable); a local folder is returned as it is."""
    if model is None:
        msg = "cache_folder needs model= (a hub id to cache there); it is not used otherwise"
        raise InvalidInputError(msg)
    name = str(model)
    if Path(name).expanduser().exists() or name.startswith((".", "/", "~")):
        return name
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return snapshot_download(
            name, revision=revision, cache_dir=str(cache_folder), ignore_patterns=_NOT_NEEDED
        )
    except (LocalEntryNotFoundError, OSError) as exc:
        msg = (
            f"model {name!r} is not in cache_folder={str(cache_folder)!r} and could not be "
            f"downloaded there ({exc}); with network access it is fetched once, offline pass "
            "a local model folder"
        )
        raise ModelNotFoundError(msg) from exc
