"""Loading cross-encoders once per process, and choosing device and dtype.

One :class:`LoadedModel` exists per (model, revision, device, dtype, backend, options): every
:class:`~crossrank.Reranker` that asks for the same model shares it, with its lock. A local
folder is known by its content (:func:`crossrank.fingerprint.fingerprint_folder`): when the
files change, the next load reads them again; a hub id is known by ``name@revision``.

A local folder is checked before and after transformers reads it, so a damaged or
incomplete folder (unreadable ``config.json``, unknown ``model_type``, truncated weights,
a tokenizer that does not fit the model) raises :class:`~crossrank.errors.InvalidModelError`
saying which file is at fault, rather than scoring garbage.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from crossrank.engine.pairs import PairTemplate
from crossrank.errors import InvalidInputError, InvalidModelError, ModelNotFoundError
from crossrank.types import BACKENDS, Backend

if TYPE_CHECKING:
    import numpy.typing as npt
    import torch
    from sentence_transformers import CrossEncoder
    from tokenizers import Tokenizer

__all__ = [
    "LoadedModel",
    "clear_registry",
    "cpu_has_bf16",
    "load_model",
    "model_identity",
    "resolve_device",
    "resolve_dtype",
]

logger = logging.getLogger(__name__)

Activation = Literal["raw", "sigmoid"]
# Takes int64 arrays (input_ids, attention_mask[, token_type_ids]); returns one logit per row.
Runner = Callable[[dict[str, "npt.NDArray[Any]"]], "npt.NDArray[Any]"]

_DTYPES = {
    "float32": "float32",
    "fp32": "float32",
    "float16": "float16",
    "fp16": "float16",
    "half": "float16",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
}


def resolve_device(device: str | None) -> str:
    """``"auto"``/None → ``"cuda"`` when available, else ``"cpu"``; MPS only when named."""
    import torch

    if device is None or device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    name = str(device)
    kind = name.split(":", 1)[0]
    if kind == "cuda":
        if not torch.cuda.is_available():
            msg = f"device={name!r} was asked for but CUDA is not available; use device='cpu'"
            raise InvalidInputError(msg)
        index = int(name.split(":", 1)[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            msg = f"device={name!r} does not exist: {torch.cuda.device_count()} CUDA device(s)"
            raise InvalidInputError(msg)
    elif kind == "mps":
        if not torch.backends.mps.is_available():
            msg = "device='mps' was asked for but MPS is not available; use device='cpu'"
            raise InvalidInputError(msg)
    elif kind != "cpu":
        msg = f"unknown device {name!r}; use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"
        raise InvalidInputError(msg)
    return name


def cpu_has_bf16(cpuinfo: str | Path = "/proc/cpuinfo") -> bool:
    """Whether this CPU multiplies bf16 natively (AVX512-BF16 or AMX-BF16).

    On such CPUs bf16 autocast runs transformer training about twice as fast as fp32; on
    others it is emulated and slower. Reads the Linux ``cpuinfo`` flags; ``False`` elsewhere.
    """
    try:
        text = Path(cpuinfo).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    for line in text.splitlines():
        if line.startswith("flags"):
            flags = set(line.partition(":")[2].split())
            return bool(flags & {"avx512_bf16", "amx_bf16"})
    return False


def resolve_dtype(dtype: str | torch.dtype | None, device: str) -> torch.dtype:
    """``"auto"`` → bf16 on CUDA with bf16 support, else fp16 on CUDA; fp32 elsewhere."""
    import torch

    if dtype is None or dtype == "auto":
        if device.startswith("cuda"):
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    name = _DTYPES.get(str(dtype).lower())
    if name is None:
        msg = f"unknown dtype {dtype!r}; use 'auto', 'float32', 'bfloat16' or 'float16'"
        raise InvalidInputError(msg)
    resolved: torch.dtype = getattr(torch, name)
    return resolved


@dataclass(eq=False)
class LoadedModel:
    """A cross-encoder loaded once, with what the engine needs to drive it directly.

    ``identity`` names the weights: ``sha256:<content fingerprint>`` for a local folder,
    ``name@revision`` for a hub id. ``model_max_length`` is the longest pair the position
    embeddings allow; ``default_max_length`` the length the model is configured to use.
    """

    name: str
    identity: str
    cross_encoder: CrossEncoder
    tokenizer: Tokenizer
    template: PairTemplate
    pad_id: int
    uses_token_type_ids: bool
    model_max_length: int
    default_max_length: int
    activation: Activation
    device: str
    dtype: torch.dtype
    backend: Backend
    runner: Runner
    lock: threading.RLock = field(default_factory=threading.RLock)
    # Largest padded-token count per batch known to fit (lowered after a CUDA OOM).
    safe_batch_tokens: int | None = None


_REGISTRY: dict[tuple[Any, ...], LoadedModel] = {}
_REGISTRY_LOCK = threading.Lock()


def _freeze(value: Any) -> Any:
    if isinstance(value, Mapping):
        return tuple(sorted((str(k), _freeze(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    return repr(value)


def _fast_path_dtype(backend: str, dtype: str | torch.dtype | None) -> str:
    """The dtype a CPU fast path computes in: fp32, or bf16 for OpenVINO when asked (on a CPU
    with native bf16). Anything else is refused rather than silently replaced."""
    name = str(dtype).lower().removeprefix("torch.") if dtype is not None else "auto"
    if name in ("auto", "float32", "fp32"):
        return "float32"
    if name in ("bfloat16", "bf16") and backend.startswith("openvino"):
        from crossrank.engine.openvino_backend import cpu_has_bf16

        if not cpu_has_bf16():
            msg = (
                f"backend={backend!r} with dtype='bfloat16' needs a CPU with native bf16 "
                "(AVX512-BF16 or AMX); this one has none: use dtype='float32'"
            )
            raise InvalidInputError(msg)
        return "bfloat16"
    allowed = (
        "'auto', 'float32' or 'bfloat16'"
        if backend.startswith("openvino")
        else "'auto' or 'float32'"
    )
    msg = f"backend={backend!r} computes in {allowed}, not dtype={dtype!r}"
    raise InvalidInputError(msg)


def load_model(
    name: str,
    *,
    revision: str | None = None,
    device: str = "auto",
    dtype: str | torch.dtype | None = "auto",
    backend: Backend = "torch",
    trust_remote_code: bool = False,
    model_kwargs: Mapping[str, Any] | None = None,
    tokenizer_kwargs: Mapping[str, Any] | None = None,
    num_threads: int | None = None,
    compile: bool = False,
) -> LoadedModel:
    """Return the process-wide :class:`LoadedModel` for these settings, loading it once.

    ``compile=True`` runs the torch model through ``torch.compile`` (dynamic shapes, so the
    engine's varying batch shapes do not recompile); the first batches pay the compilation.
    """
    if backend not in BACKENDS:
        msg = f"backend must be one of {', '.join(map(repr, BACKENDS))}; got {backend!r}"
        raise InvalidInputError(msg)
    if not isinstance(compile, bool):
        msg = f"compile must be True or False, got {compile!r}"
        raise InvalidInputError(msg)
    if backend != "torch":
        if device not in ("auto", "cpu", None):
            msg = f"backend={backend!r} runs on the CPU; use backend='torch' for device={device!r}"
            raise InvalidInputError(msg)
        if compile:
            msg = f"compile=True applies to backend='torch' only, not {backend!r}"
            raise InvalidInputError(msg)
        dtype = _fast_path_dtype(backend, dtype)
        device = "cpu"
    resolved_device = resolve_device(device)
    resolved_dtype = resolve_dtype(dtype, resolved_device)
    folder = _local_folder(name)
    key = (
        name if folder is None else str(folder),
        revision,
        resolved_device,
        str(resolved_dtype),
        backend,
        trust_remote_code,
        _freeze(model_kwargs or {}),
        _freeze(tokenizer_kwargs or {}),
        num_threads,
        compile,
    )
    with _REGISTRY_LOCK:
        identity = model_identity(name, revision)
        loaded = _REGISTRY.get(key)
        if loaded is not None and loaded.identity == identity:
            return loaded
        if loaded is not None:
            logger.info("model %s changed since it was loaded; loading it again", name)
            del _REGISTRY[key]
        load = functools.partial(
            _load,
            name,
            revision=revision,
            device=resolved_device,
            dtype=resolved_dtype,
            backend=backend,
            trust_remote_code=trust_remote_code,
            model_kwargs=dict(model_kwargs or {}),
            tokenizer_kwargs=dict(tokenizer_kwargs or {}),
            num_threads=num_threads,
            compile=compile,
        )
        fresh = load(identity=identity)
        for _attempt in range(2):
            # Files replaced while they were read: the model may mix old and new; read again.
            now = model_identity(name, revision)
            if now == fresh.identity:
                break
            logger.warning("model %s changed while it was loaded; loading it again", name)
            fresh = load(identity=now)
        _REGISTRY[key] = fresh
    return fresh


def model_identity(name: str, revision: str | None = None) -> str:
    """What names a model's weights: ``sha256:<fingerprint>`` of a local folder's content
    (memoised per file, so an unchanged folder is not read again), else ``name@revision``.

    Raises :class:`ModelNotFoundError` for a local path that is not a model folder.
    """
    from crossrank.fingerprint import fingerprint_folder

    folder = _local_folder(name)
    if folder is None:
        return f"{name}@{revision or 'main'}"
    if not (folder / "config.json").is_file():
        what = "folder has no config.json" if folder.is_dir() else "folder does not exist"
        msg = f"model {name!r} not found: the {what}; pass a cross-encoder model folder or hub id"
        raise ModelNotFoundError(msg)
    return f"sha256:{fingerprint_folder(folder)}"


def _looks_local(name: str) -> bool:
    return name.startswith((".", "/", "~")) or Path(name).expanduser().exists()


def _local_folder(name: str) -> Path | None:
    """The resolved path when ``name`` names a local path (existing or not), else ``None``."""
    return Path(name).expanduser().resolve() if _looks_local(name) else None


def _load(
    name: str,
    *,
    revision: str | None,
    device: str,
    dtype: torch.dtype,
    backend: Backend,
    trust_remote_code: bool,
    model_kwargs: dict[str, Any],
    tokenizer_kwargs: dict[str, Any],
    num_threads: int | None,
    compile: bool = False,
    identity: str,
) -> LoadedModel:
    from crossrank.engine import checks

    folder = _local_folder(name)
    if folder is not None:
        checks.check_folder(name, folder, trust_remote_code=trust_remote_code)
    import torch

    # The fast paths export from the fp32 weights; `dtype` is then what their runtime computes in.
    load_dtype = dtype if backend == "torch" else torch.float32
    kwargs: dict[str, Any] = {"dtype": load_dtype, **model_kwargs}
    logger.info("loading cross-encoder %s on %s (%s, backend=%s)", name, device, dtype, backend)
    cross_encoder = checks.open_cross_encoder(
        name,
        folder,
        device=device,
        revision=revision,
        trust_remote_code=trust_remote_code,
        model_kwargs=kwargs,
        processor_kwargs=tokenizer_kwargs or None,
    )
    cross_encoder.eval()
    num_labels = int(cross_encoder.num_labels)
    if num_labels != 1:
        msg = (
            f"model {name!r} has {num_labels} output labels; a reranker needs a model with one "
            "relevance score (num_labels=1), such as a cross-encoder trained for ranking"
        )
        raise InvalidModelError(msg)
    hf_tokenizer = cross_encoder.tokenizer
    checks.check_tokenizer(name, hf_tokenizer, cross_encoder.model.config, folder)
    checks.check_weights(name, cross_encoder.model, load_dtype, folder)
    tokenizer = _plain_tokenizer(hf_tokenizer)
    pad_id = hf_tokenizer.pad_token_id
    model_max = _model_max_length(cross_encoder)
    default_max = min(int(cross_encoder.max_seq_length or model_max), model_max)
    runner: Runner
    if backend == "torch":
        from crossrank.engine.cpu_threads import spinning_hint

        spinning_hint(device)
        runner = _TorchRunner(cross_encoder.model, device, compile=compile)
    elif backend.startswith("openvino"):
        from crossrank.engine.openvino_backend import OpenVinoRunner
        from crossrank.engine.openvino_backend import exported_model as ov_model

        quantize = backend == "openvino-int8"
        xml = ov_model(cross_encoder.model, hf_tokenizer, identity, quantize=quantize)
        precision = "bf16" if dtype == torch.bfloat16 else "f32"
        runner = OpenVinoRunner(xml, num_threads=num_threads, precision=precision)
    else:
        from crossrank.engine.onnx_backend import OnnxRunner, exported_model

        # The export depends on the weights and on whatever model_kwargs change in them.
        extra = {k: v for k, v in model_kwargs.items() if k not in ("dtype", "torch_dtype")}
        export_key = identity if not extra else f"{identity}|{_freeze(extra)!r}"
        onnx_path = exported_model(cross_encoder.model, export_key, quantize=backend == "onnx-int8")
        runner = OnnxRunner(onnx_path, num_threads=num_threads)
    return LoadedModel(
        name=name,
        identity=identity,
        cross_encoder=cross_encoder,
        tokenizer=tokenizer,
        template=PairTemplate.from_tokenizer(tokenizer),
        pad_id=int(pad_id) if pad_id is not None else 0,
        uses_token_type_ids="token_type_ids" in hf_tokenizer.model_input_names,
        model_max_length=model_max,
        default_max_length=default_max,
        activation=_activation_of(cross_encoder),
        device=device,
        dtype=dtype,
        backend=backend,
        runner=runner,
    )


class _TorchRunner:
    """Moves a batch to the model's device (pinned memory on CUDA) and returns fp32 logits."""

    def __init__(self, model: Any, device: str, *, compile: bool = False) -> None:
        self.model = model
        self.device = device
        self.compiled: Any = None
        if compile:
            import torch

            self.compiled = torch.compile(model, dynamic=True)

    def __call__(self, features: dict[str, npt.NDArray[Any]]) -> npt.NDArray[Any]:
        import torch

        on_cuda = self.device.startswith("cuda")
        tensors = {}
        for name, array in features.items():
            tensor = torch.from_numpy(array)
            if on_cuda:
                tensor = tensor.pin_memory().to(self.device, non_blocking=True)
            elif self.device != "cpu":
                tensor = tensor.to(self.device)
            tensors[name] = tensor
        with torch.inference_mode():
            forward = self.model if self.compiled is None else self.compiled
            logits = forward(**tensors).logits
        scores = logits.float().reshape(logits.shape[0], -1)[:, 0]
        return scores.cpu().numpy().astype("float64")


def _plain_tokenizer(hf_tokenizer: Any) -> Tokenizer:
    """A private copy of the fast tokenizer with truncation and padding off."""
    from tokenizers import Tokenizer

    backend = getattr(hf_tokenizer, "backend_tokenizer", None)
    if backend is None:
        msg = "crossrank needs a fast (Rust) tokenizer; this model only has a slow one"
        raise InvalidModelError(msg)
    tokenizer = Tokenizer.from_str(backend.to_str())
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


def _model_max_length(cross_encoder: CrossEncoder) -> int:
    """The longest input the model's position embeddings allow (the tokenizer's configured
    length may be shorter; that is the default, not the limit)."""
    config = getattr(cross_encoder.model, "config", None)
    positions = int(getattr(config, "max_position_embeddings", 0) or 0)
    if positions:
        # RoBERTa-style models reserve positions for padding.
        pad = getattr(config, "pad_token_id", None)
        roberta = getattr(config, "model_type", "") in {"roberta", "xlm-roberta", "camembert"}
        return positions - (int(pad) + 1 if roberta and pad is not None else 0)
    limit = int(getattr(cross_encoder.tokenizer, "model_max_length", 0) or 0)
    return limit if 0 < limit < 1_000_000 else int(cross_encoder.max_seq_length or 512)


def _activation_of(cross_encoder: CrossEncoder) -> Activation:
    import torch

    fn = cross_encoder.activation_fn
    if isinstance(fn, torch.nn.Sigmoid):
        return "sigmoid"
    if fn is None or isinstance(fn, torch.nn.Identity):
        return "raw"
    logger.warning(
        "model's activation %r is neither sigmoid nor identity; crossrank reports raw logits", fn
    )
    return "raw"


def clear_registry() -> None:
    """Forget every loaded model (tests and long-running notebooks)."""
    with _REGISTRY_LOCK:
        _REGISTRY.clear()
