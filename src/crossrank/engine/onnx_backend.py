"""The CPU fast path: the same checkpoint exported to ONNX (fp32 or int8), run by onnxruntime.

The export is made once per model (keyed by the model's identity) into crossrank's cache and
reused by every later load. BERT-family graphs get onnxruntime's transformer fusions;
``"onnx-int8"`` adds dynamic int8 quantisation of the weights.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crossrank.errors import InvalidModelError, MissingExtraError
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


def _require_onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError as exc:
        raise MissingExtraError(
            package="onnxruntime", extra="onnx", purpose="ONNX backend"
        ) from exc
    return onnxruntime


def export_dir(identity: str) -> Path:
    """Where the ONNX files of the model with this identity live."""
    digest = hashlib.sha256(identity.encode("utf-8")).hexdigest()[:16]
    return cache_dir() / "onnx" / digest


def exported_model(hf_model: Any, identity: str, *, quantize: bool) -> Path:
    """The ONNX file for ``hf_model`` (fp32 or int8), exporting it on first use."""
    _require_onnxruntime()
    folder = export_dir(identity)
    target = folder / ("model-int8.onnx" if quantize else "model.onnx")
    with _EXPORT_LOCK:
        if target.is_file():
            logger.info("reusing the ONNX export %s", target)
            return target
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "identity.txt").write_text(identity, encoding="utf-8")
        fp32 = folder / "model.onnx"
        if not fp32.is_file():
            _export(hf_model, fp32)
        if quantize:
            _quantize(fp32, target)
    return target


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
    tmp = path.with_suffix(".tmp.onnx")
    fused = path.with_suffix(".fused.onnx")
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
    kind = _FUSABLE.get(getattr(config, "model_type", ""))
    if kind is not None:
        from onnxruntime.transformers import optimizer

        optimized = optimizer.optimize_model(
            str(tmp),
            model_type=kind,
            num_heads=int(config.num_attention_heads),
            hidden_size=int(config.hidden_size),
        )
        optimized.save_model_to_file(str(fused))
        tmp.unlink()
        fused.replace(path)
    else:
        tmp.replace(path)


def _quantize(source: Path, target: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    tmp = target.with_suffix(".tmp.onnx")
    from onnx import TensorProto

    quantize_dynamic(
        str(source),
        str(tmp),
        weight_type=QuantType.QInt8,
        per_channel=True,
        # Fused attention nodes defeat shape inference; their tensors are fp32.
        extra_options={"DefaultTensorType": TensorProto.FLOAT},
    )
    tmp.replace(target)


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
            msg = f"onnxruntime could not load {path}: {exc}; delete the folder to re-export"
            raise InvalidModelError(msg) from exc
        self.input_names = {i.name for i in self.session.get_inputs()}
        self.path = path

    def __call__(self, features: dict[str, npt.NDArray[Any]]) -> npt.NDArray[Any]:
        feed = {name: value for name, value in features.items() if name in self.input_names}
        logits = self.session.run(["logits"], feed)[0]
        return logits.reshape(logits.shape[0], -1)[:, 0].astype("float64")
