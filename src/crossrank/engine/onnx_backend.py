"""The CPU fast path: the same checkpoint exported to ONNX (fp32 or int8), run by onnxruntime.

The export is made once per model into crossrank's cache, keyed by the model's content
fingerprint (so new weights are exported again even when ``cp -p`` kept the old size and
modification time), and reused by every later load, in this process and in others.
BERT-family graphs get onnxruntime's transformer fusions; ``"onnx-int8"`` adds dynamic int8
quantisation of the weights.

Several processes may export the same model at once: one holds a file lock on the export
folder (``filelock``) and exports while the others wait and then reuse its work. Every file
is written under a unique temporary name and renamed into place, and a checksum file
(``model.onnx.sha256``) written after it marks it complete. An export without a checksum,
or whose bytes no longer match it (a process killed half-way, a damaged disk), is reported
with a warning and made again; temporary files a killed process left behind are removed by
the next process that takes the lock.

A cache folder that cannot be written is no reason to give up ONNX: a complete export
already there is used without writing anything; otherwise the model is exported into a
temporary folder for this process only (a warning says so; the folder is deleted at exit),
so every start pays the export. Set ``CROSSRANK_CACHE`` to a writable folder to keep it.
"""

from __future__ import annotations

import atexit
import hashlib
import logging
import os
import shutil
import tempfile
import threading
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crossrank.errors import InvalidModelError, MissingExtraError
from crossrank.fingerprint import fingerprint_file
from crossrank.paths import cache_dir

if TYPE_CHECKING:
    import numpy.typing as npt

__all__ = ["OnnxRunner", "export_dir", "exported_model"]

logger = logging.getLogger(__name__)

_FUSABLE = {
    "bert": "bert",
    "roberta": "bert",
    "xlm-roberta": "bert",
    "distilbert": "bert",
    "electra": "bert",
    "camembert": "bert",
}
_EXPORT_LOCK = threading.Lock()
# Temporary files are named ".<final name>.partial-<random>"; only lock holders write them.
_PARTIAL = ".partial-"
_SEAL = ".sha256"


def _require_onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError as exc:
        raise MissingExtraError(
            package="onnxruntime", extra="onnx", purpose="ONNX backend"
        ) from exc
    return onnxruntime


def export_dir(identity: str) -> Path:
    """Where the ONNX files of the model with this identity (export key) live."""
    digest = hashlib.sha256(identity.encode("utf-8")).hexdigest()[:16]
    return cache_dir() / "onnx" / digest


def exported_model(hf_model: Any, identity: str, *, quantize: bool) -> Path:
    """The ONNX file for ``hf_model`` (fp32 or int8), exporting it on first use.

    ``identity`` is the export key: the model's content fingerprint (see
    :func:`crossrank.engine.loading.model_identity`). Safe to call from several threads and
    processes at once; see the module's docstring for damaged exports and read-only caches.
    """
    _require_onnxruntime()
    folder = export_dir(identity)
    target = folder / ("model-int8.onnx" if quantize else "model.onnx")
    if _complete(target):
        logger.info("reusing the ONNX export %s", target)
        _tidy(folder)
        return target
    with _EXPORT_LOCK:
        try:
            lock = _lock(folder)
        except OSError as exc:
            return _export_elsewhere(hf_model, identity, folder, quantize=quantize, error=exc)
        with lock:
            return _export_locked(hf_model, identity, folder, target, quantize=quantize)


def _lock(folder: Path) -> Any:
    """The folder's inter-process lock, acquired (waiting while another process exports),
    as a context manager that releases it; ``OSError`` when the folder cannot be written."""
    from filelock import FileLock, Timeout

    folder.mkdir(parents=True, exist_ok=True)
    lock = FileLock(folder / ".lock")
    try:
        return lock.acquire(timeout=0)
    except Timeout:
        logger.warning("waiting for another process exporting the model to ONNX in %s", folder)
        return lock.acquire()


def _export_locked(
    hf_model: Any, identity: str, folder: Path, target: Path, *, quantize: bool
) -> Path:
    _remove_partials(folder)
    if _complete(target):  # another process made it while this one waited
        logger.info("reusing the ONNX export %s", target)
        return target
    _write_atomic(folder / "identity.txt", identity.encode("utf-8"))
    fp32 = folder / "model.onnx"
    for path in {fp32, target}:
        if path.exists() and not _complete(path):
            logger.warning(
                "the ONNX export %s is incomplete or damaged (no matching checksum); "
                "exporting it again",
                path,
            )
    if not _complete(fp32):
        _export(hf_model, fp32)
    if quantize:
        _quantize(fp32, target)
    return target


_TEMP_EXPORTS: list[Path] = []


def _export_elsewhere(
    hf_model: Any, identity: str, folder: Path, *, quantize: bool, error: OSError
) -> Path:
    """Export into a private temporary folder when the cache cannot be written."""
    tmp = Path(tempfile.mkdtemp(prefix="crossrank-onnx-"))
    if not _TEMP_EXPORTS:
        atexit.register(_remove_temp_exports)
    _TEMP_EXPORTS.append(tmp)
    logger.warning(
        "cannot write the ONNX export to crossrank's cache (%s: %s); exporting into %s for "
        "this process only (deleted at exit). Set CROSSRANK_CACHE to a writable folder to "
        "export once and reuse it",
        folder,
        error,
        tmp,
    )
    target = tmp / ("model-int8.onnx" if quantize else "model.onnx")
    return _export_locked(hf_model, identity, tmp, target, quantize=quantize)


def _remove_temp_exports() -> None:
    for folder in _TEMP_EXPORTS:
        shutil.rmtree(folder, ignore_errors=True)


def _partial(path: Path) -> Path:
    """A new, unique temporary file beside ``path`` (created empty)."""
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}{_PARTIAL}", suffix=".onnx")
    os.close(fd)
    return Path(name)


def _partials(folder: Path) -> list[Path]:
    return [p for p in folder.glob(f".*{_PARTIAL}*") if p.is_file()]


def _remove_partials(folder: Path) -> None:
    """Remove what killed exporters left. Only the lock holder writes temporary files, so
    while this process holds the lock none of them is being written."""
    for path in _partials(folder):
        logger.warning("removing %s, left by an interrupted ONNX export", path)
        path.unlink(missing_ok=True)


def _tidy(folder: Path) -> None:
    """On reuse: remove leftovers of a killed exporter when no exporter holds the lock."""
    if not _partials(folder):
        return
    from filelock import FileLock, Timeout

    lock = FileLock(folder / ".lock")
    try:
        lock.acquire(timeout=0)
    except (Timeout, OSError):
        return
    try:
        _remove_partials(folder)
    finally:
        lock.release()


def _seal_path(path: Path) -> Path:
    return path.with_name(path.name + _SEAL)


def _complete(path: Path) -> bool:
    """Whether ``path`` is a finished export: its checksum file matches its bytes."""
    try:
        recorded = _seal_path(path).read_text(encoding="utf-8").split()
        return path.is_file() and recorded[:1] == [fingerprint_file(path)]
    except OSError:
        return False


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = _partial(path)
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _install(tmp: Path, path: Path) -> None:
    """Rename the finished ``tmp`` to ``path`` and seal it with its checksum."""
    digest = fingerprint_file(tmp)
    os.replace(tmp, path)
    _write_atomic(_seal_path(path), f"{digest}  {path.name}\n".encode())


def _export(hf_model: Any, path: Path) -> None:
    import torch
    from transformers import AutoModelForSequenceClassification

    logger.warning("exporting the model to ONNX once (%s); later loads reuse it", path)
    config = hf_model.config
    # Eager attention traces into a graph that is exact for every batch shape and padding.
    model = AutoModelForSequenceClassification.from_config(
        config, attn_implementation="eager", dtype=torch.float32
    )
    model.load_state_dict({k: v.float() for k, v in hf_model.state_dict().items()})
    model.eval()
    names = ["input_ids", "attention_mask"]
    if getattr(config, "type_vocab_size", 0) and config.type_vocab_size > 1:
        names.append("token_type_ids")
    sample = torch.ones(2, 8, dtype=torch.long)
    kwargs = {name: sample if name != "token_type_ids" else sample * 0 for name in names}
    kwargs["attention_mask"] = sample.clone()
    kwargs["attention_mask"][1, 5:] = 0
    tmp = _partial(path)
    fused = _partial(path)
    try:
        _trace(model, names, kwargs, tmp)
        kind = _FUSABLE.get(getattr(config, "model_type", ""))
        if kind is None:
            _install(tmp, path)
            return
        from onnxruntime.transformers import optimizer

        optimized = optimizer.optimize_model(
            str(tmp),
            model_type=kind,
            num_heads=int(config.num_attention_heads),
            hidden_size=int(config.hidden_size),
        )
        optimized.save_model_to_file(str(fused))
        _install(fused, path)
    finally:
        tmp.unlink(missing_ok=True)
        fused.unlink(missing_ok=True)


def _trace(model: Any, names: list[str], kwargs: dict[str, Any], tmp: Path) -> None:
    import torch

    # The tracer warns about shape-dependent Python branches in the masking code; with eager
    # attention those branches hold for every shape, which the tests check.
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (),
            str(tmp),
            kwargs=kwargs,
            input_names=names,
            output_names=["logits"],
            dynamic_axes={
                **{n: {0: "batch", 1: "sequence"} for n in names},
                "logits": {0: "batch"},
            },
            opset_version=17,
            dynamo=False,
        )


def _quantize(source: Path, target: Path) -> None:
    from onnx import TensorProto
    from onnxruntime.quantization import QuantType, quantize_dynamic

    tmp = _partial(target)
    try:
        quantize_dynamic(
            str(source),
            str(tmp),
            weight_type=QuantType.QInt8,
            per_channel=True,
            # Fused attention nodes defeat shape inference; their tensors are fp32.
            extra_options={"DefaultTensorType": TensorProto.FLOAT},
        )
        _install(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class OnnxRunner:
    """Runs an exported model on onnxruntime's CPU provider; returns one logit per row."""

    def __init__(self, path: Path, *, num_threads: int | None = None) -> None:
        ort = _require_onnxruntime()
        options = ort.SessionOptions()
        options.intra_op_num_threads = num_threads or _cpu_count()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Idle pool threads sleep instead of spinning: on cores shared with other busy
        # processes spinning made the engine 1.8x slower (docs/speed.md).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own untyped errors
            msg = (
                f"onnxruntime could not load {path}: {exc}; delete the folder {path.parent} "
                "to export the model again"
            )
            raise InvalidModelError(msg) from exc
        self.input_names = {i.name for i in self.session.get_inputs()}
        self.path = path

    def __call__(self, features: dict[str, npt.NDArray[Any]]) -> npt.NDArray[Any]:
        feed = {name: value for name, value in features.items() if name in self.input_names}
        logits = self.session.run(["logits"], feed)[0]
        return logits.reshape(logits.shape[0], -1)[:, 0].astype("float64")
