"""The OpenVINO CPU path: the checkpoint converted to OpenVINO IR (fp32, or static int8).

Like the ONNX path, the conversion is made once per model (keyed by the model's identity) into
crossrank's cache and reused by every later load, in this process and in others: a file lock
serialises exporters, each writes under a unique temporary name and renames its files into
place (the ``.bin`` weights first, then the ``.xml`` that marks the export complete).

``"openvino-int8"`` is *static* int8: NNCF calibrates activation ranges on a small built-in
set of English query/passage pairs (:data:`CALIBRATION_QUERIES`, :data:`CALIBRATION_PASSAGES`)
and quantises every matrix multiplication, so they run on the CPU's int8 dot-product units
(AVX512-VNNI, AMX); layer norms, softmax and the scores stay fp32.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import threading
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crossrank.errors import InvalidModelError, MissingExtraError
from crossrank.paths import cache_dir

if TYPE_CHECKING:
    import numpy.typing as npt

__all__ = [
    "CALIBRATION_PASSAGES",
    "CALIBRATION_QUERIES",
    "OpenVinoRunner",
    "calibration_features",
    "cpu_has_bf16",
    "export_dir",
    "exported_model",
]

logger = logging.getLogger(__name__)

# Bump when the conversion or the quantisation recipe changes: old exports are then ignored.
_RECIPE = "ov1"
_CALIBRATION_MAX_LENGTH = 512
_THREAD_LOCK = threading.Lock()

CALIBRATION_QUERIES = (
    "does vitamin d supplementation lower the risk of cancer",
    "how do vaccines train the immune system",
    "what causes the seasons on earth",
    "best way to store fresh bread",
    "symptoms of iron deficiency anemia in adults",
    "how does a transformer neural network use attention",
    "when did the roman empire fall",
    "python list comprehension with a condition",
    "effect of sleep deprivation on memory consolidation",
    "why is the sky blue",
    "interest rate increase effect on inflation",
    "how to replace a bicycle inner tube",
)
CALIBRATION_PASSAGES = (
    "Vitamin D is a fat-soluble vitamin made in the skin under sunlight. Large randomised "
    "trials of daily supplements found no clear reduction in the overall incidence of cancer, "
    "although some analyses suggest a small decrease in cancer mortality after several years.",
    "Vaccines expose the immune system to a harmless piece or weakened form of a pathogen. B "
    "cells produce antibodies against it and memory cells persist, so a later infection is "
    "recognised and cleared quickly, often before symptoms appear.",
    "The Earth's axis is tilted by about 23.4 degrees relative to its orbit. As the planet "
    "travels around the Sun, each hemisphere is tipped toward the Sun for part of the year, "
    "receiving more direct sunlight and longer days: that is summer.",
    "Bread keeps best at room temperature in a paper bag or bread box for two or three days. "
    "The refrigerator makes it stale faster; for longer storage, slice it and freeze it in an "
    "airtight bag, then toast the slices straight from the freezer.",
    "Iron deficiency anemia develops slowly. Common signs include fatigue, pale skin, shortness "
    "of breath on exertion, cold hands and feet, brittle nails and, in some people, cravings "
    "for ice. A blood test of ferritin and hemoglobin confirms the diagnosis.",
    "Self-attention lets every token in a sequence weigh every other token. Queries, keys and "
    "values are linear projections of the hidden states; the softmax of scaled query-key dot "
    "products gives the weights used to mix the values, in several heads at once.",
    "The Western Roman Empire is usually said to have ended in 476 AD, when the Germanic "
    "leader Odoacer deposed the emperor Romulus Augustulus. The Eastern Empire, with its "
    "capital at Constantinople, lasted until the Ottoman conquest of 1453.",
    "A list comprehension builds a new list from an iterable: [x * 2 for x in values if x > 0] "
    "doubles the positive numbers. The optional if clause filters items; a conditional "
    "expression before the for, such as a if cond else b, transforms them instead.",
    "During sleep, the hippocampus replays recent experiences and transfers them to the cortex. "
    "Studies in which participants were kept awake overnight show poorer recall of word lists "
    "and faces learned the day before, compared with rested controls.",
    "Sunlight contains all visible wavelengths. Molecules in the atmosphere scatter shorter "
    "wavelengths much more strongly than longer ones (Rayleigh scattering), so blue light is "
    "redirected across the whole sky and reaches our eyes from every direction.",
    "When a central bank raises its policy rate, borrowing becomes more expensive for banks, "
    "firms and households. Spending and investment slow, demand cools and, typically with a "
    "lag of one to two years, the rate of inflation falls.",
    "Remove the wheel and let out any remaining air. Use tyre levers to lift one bead of the "
    "tyre over the rim, pull out the old tube, check the inside of the tyre for thorns, then "
    "insert a slightly inflated new tube, refit the bead and pump to the marked pressure.",
)


def _require_openvino() -> Any:
    try:
        import openvino
    except ImportError as exc:
        raise MissingExtraError(
            package="openvino", extra="openvino", purpose="the OpenVINO backend"
        ) from exc
    return openvino


def export_dir(identity: str) -> Path:
    """Where the OpenVINO files of the model with this identity live."""
    digest = hashlib.sha256(f"{_RECIPE}\n{identity}".encode()).hexdigest()[:16]
    return cache_dir() / "openvino" / digest


def exported_model(hf_model: Any, hf_tokenizer: Any, identity: str, *, quantize: bool) -> Path:
    """The OpenVINO ``.xml`` for ``hf_model`` (fp32, or static int8), converting on first use.

    ``hf_tokenizer`` encodes the calibration pairs for int8. Safe to call from several
    threads and processes at once: one converts, the others wait and reuse its files.
    """
    _require_openvino()
    from filelock import FileLock

    folder = export_dir(identity)
    target = folder / ("model-int8.xml" if quantize else "model.xml")
    if target.is_file():
        logger.info("reusing the OpenVINO export %s", target)
        return target
    folder.mkdir(parents=True, exist_ok=True)
    with _THREAD_LOCK, FileLock(str(folder / "export.lock")):
        if target.is_file():  # another process finished it while this one waited
            logger.info("reusing the OpenVINO export %s", target)
            return target
        _write_atomically(folder / "identity.txt", identity.encode("utf-8"))
        fp32 = folder / "model.xml"
        if not fp32.is_file():
            _convert(hf_model, fp32)
        if quantize:
            _quantize(fp32, hf_tokenizer, target, _calibration_length(hf_model.config))
    return target


def _write_atomically(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)


def _save(model: Any, target: Path) -> None:
    """Save an OpenVINO model as ``target`` (.xml) and its ``.bin``, atomically."""
    import openvino as ov

    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".export-") as tmp:
        staged = Path(tmp) / target.name
        ov.save_model(model, str(staged), compress_to_fp16=False)
        os.replace(staged.with_suffix(".bin"), target.with_suffix(".bin"))
        os.replace(staged, target)


def _input_names(config: Any) -> list[str]:
    names = ["input_ids", "attention_mask"]
    if getattr(config, "type_vocab_size", 0) and config.type_vocab_size > 1:
        names.append("token_type_ids")
    return names


def _convert(hf_model: Any, target: Path) -> None:
    import openvino as ov
    import torch
    from transformers import AutoModelForSequenceClassification

    logger.warning("converting the model to OpenVINO once (%s); later loads reuse it", target)
    config = hf_model.config
    # Eager attention traces into a graph that is exact for every batch shape and padding;
    # OpenVINO fuses the attention pattern again when it compiles the model.
    model = AutoModelForSequenceClassification.from_config(
        config, attn_implementation="eager", dtype=torch.float32
    )
    model.load_state_dict({k: v.float() for k, v in hf_model.state_dict().items()})
    model.eval()
    names = _input_names(config)
    sample = torch.ones(2, 8, dtype=torch.long)
    example = {name: sample * 0 if name == "token_type_ids" else sample.clone() for name in names}
    example["attention_mask"][1, 5:] = 0
    inputs = [(name, ov.PartialShape([-1, -1]), ov.Type.i64) for name in names]
    try:
        # The tracer warns about shape-dependent Python branches in the masking code; with
        # eager attention those branches hold for every shape, which the tests check.
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            converted = ov.convert_model(model, example_input=example, input=inputs)
    except Exception as exc:  # OpenVINO's frontends raise their own untyped errors
        msg = f"OpenVINO could not convert this model: {exc}; use backend='torch' or 'onnx'"
        raise InvalidModelError(msg) from exc
    converted.outputs[0].get_tensor().set_names({"logits"})
    _save(converted, target)


def calibration_features(
    hf_tokenizer: Any, names: list[str], max_length: int = _CALIBRATION_MAX_LENGTH
) -> list[dict[str, Any]]:
    """Model inputs for calibration (one pair each): every built-in query with its own
    passage, with the next query's passage, with both joined, and with all passages joined
    (cut at ``max_length``), so that short and full-length inputs set the ranges."""
    n = len(CALIBRATION_QUERIES)
    texts: list[tuple[str, str]] = []
    for i, query in enumerate(CALIBRATION_QUERIES):
        own, other = CALIBRATION_PASSAGES[i], CALIBRATION_PASSAGES[(i + 1) % n]
        rest = " ".join(CALIBRATION_PASSAGES[(i + j) % n] for j in range(n))
        texts += [(query, own), (query, other), (query, f"{other} {own}"), (query, rest)]
    items = []
    for query, passage in texts:
        encoded = hf_tokenizer(
            query,
            passage,
            truncation="only_second",
            max_length=max_length,
            return_tensors="np",
        )
        item = {name: encoded[name].astype("int64") for name in names if name in encoded}
        if "token_type_ids" in names and "token_type_ids" not in item:
            item["token_type_ids"] = item["input_ids"] * 0
        items.append(item)
    return items


def _calibration_length(config: Any) -> int:
    """The longest calibration input: 512 tokens, or fewer if the model's positions end
    sooner (RoBERTa-style models reserve positions for padding)."""
    positions = int(getattr(config, "max_position_embeddings", 0) or _CALIBRATION_MAX_LENGTH)
    if getattr(config, "model_type", "") in {"roberta", "xlm-roberta", "camembert"}:
        positions -= int(getattr(config, "pad_token_id", 1) or 1) + 1
    return max(8, min(_CALIBRATION_MAX_LENGTH, positions))


def _quantize(source: Path, hf_tokenizer: Any, target: Path, max_length: int) -> None:
    import openvino as ov

    try:
        import nncf
    except ImportError as exc:
        raise MissingExtraError(
            package="nncf", extra="openvino", purpose="backend='openvino-int8'"
        ) from exc
    logger.warning("quantising the OpenVINO model to int8 once (%s); later loads reuse it", target)
    model = ov.Core().read_model(str(source))
    names = [port.get_any_name() for port in model.inputs]
    items = calibration_features(hf_tokenizer, names, max_length)
    quantized = nncf.quantize(
        model,
        nncf.Dataset(items),
        model_type=nncf.ModelType.TRANSFORMER,
        subset_size=len(items),
    )
    _save(quantized, target)


def cpu_has_bf16() -> bool:
    """Whether OpenVINO's CPU plugin can compute in bf16 natively here (AVX512-BF16 or AMX)."""
    ov = _require_openvino()
    capabilities = ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    return "BF16" in capabilities


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class OpenVinoRunner:
    """Runs an OpenVINO model on the CPU plugin; returns one fp64 logit per row.

    One stream, latency mode, fp32 for every operation that is not quantised (OpenVINO would
    otherwise pick bf16 on CPUs that have it) unless ``precision="bf16"`` asks for it
    (``dtype="bfloat16"``), and no thread pinning: a service shares its
    cores with other processes, and pinned threads cannot move away from a busy core.
    """

    def __init__(
        self, path: Path, *, num_threads: int | None = None, precision: str = "f32"
    ) -> None:
        ov = _require_openvino()
        config = {
            "PERFORMANCE_HINT": "LATENCY",
            "NUM_STREAMS": 1,
            "INFERENCE_NUM_THREADS": num_threads or _cpu_count(),
            "INFERENCE_PRECISION_HINT": precision,
            "ENABLE_CPU_PINNING": False,
        }
        try:
            self.compiled = ov.Core().compile_model(str(path), "CPU", config)
        except Exception as exc:  # OpenVINO raises its own untyped errors
            msg = f"OpenVINO could not load {path}: {exc}; delete the folder to re-export"
            raise InvalidModelError(msg) from exc
        self.request = self.compiled.create_infer_request()
        self.input_names = {port.get_any_name() for port in self.compiled.inputs}
        self.path = path

    def __call__(self, features: dict[str, npt.NDArray[Any]]) -> npt.NDArray[Any]:
        """Score one padded batch (callers hold the model's lock: one request is reused)."""
        feed = {name: value for name, value in features.items() if name in self.input_names}
        logits = self.request.infer(feed)[0]
        return logits.reshape(logits.shape[0], -1)[:, 0].astype("float64")
