"""Training settings: :class:`TrainConfig`, ``name:split`` data specs, and named presets."""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from crossrank.errors import InvalidInputError

__all__ = [
    "LOSSES",
    "PRESETS",
    "DataSpec",
    "LossName",
    "TrainConfig",
    "check_model_name",
    "preset_config",
]

LossName = Literal["mnrl", "bce", "listnet", "lambda"]
LOSSES: tuple[LossName, ...] = ("mnrl", "bce", "listnet", "lambda")
PRESETS = ("starter",)


@dataclass(frozen=True, slots=True)
class DataSpec:
    """A collection (folder or name under the shared data folder) and one qrels split."""

    collection: str
    split: str

    @classmethod
    def parse(cls, text: str, default_split: str = "train") -> DataSpec:
        """``"scifact:train"`` → ``DataSpec("scifact", "train")``; no ``:`` → ``default_split``.

        A Windows drive letter (``C:\\data``) is not taken for a split.
        """
        if not isinstance(text, str) or not text.strip():
            msg = f"a data spec must look like 'scifact:train', got {text!r}"
            raise InvalidInputError(msg)
        head, sep, tail = text.rpartition(":")
        if not sep or not head or os.sep in tail or "/" in tail or len(head) == 1:
            return cls(text, default_split)
        if not tail:
            msg = f"data spec {text!r} has an empty split; use e.g. {head}:train"
            raise InvalidInputError(msg)
        return cls(head, tail)

    def __str__(self) -> str:
        return f"{self.collection}:{self.split}"


def _specs(values: Any, default_split: str, name: str) -> tuple[DataSpec, ...]:
    if isinstance(values, str | DataSpec):
        values = (values,)
    try:
        items = tuple(values)
    except TypeError:
        msg = f"{name} must be a list of 'collection:split' specs, got {values!r}"
        raise InvalidInputError(msg) from None
    return tuple(v if isinstance(v, DataSpec) else DataSpec.parse(v, default_split) for v in items)


@dataclass(frozen=True)
class TrainConfig:
    """Everything one training run needs; see ``crossrank train --help`` for each option.

    Attributes:
        data: training splits as ``"collection:split"`` specs (``"scifact:train"``).
        backbone: model folder or hub id to start from (default: the offline
            all-MiniLM-L6-v2 bi-encoder; a bi-encoder gets a fresh one-logit head).
        retriever: bi-encoder that mines hard negatives and retrieves dev/test candidates
            (default: the offline all-MiniLM-L6-v2).
        output: where the model folder goes (default: see :func:`crossrank.training.output_dir`).
        loss: ``"mnrl"`` (softmax over the positive, hard and in-batch negatives),
            ``"bce"`` (pointwise), ``"listnet"`` or ``"lambda"`` (listwise).
        negatives: hard negatives per positive; ``skip_top`` dense ranks are never used
            (they hold unjudged relevant documents too often); negatives are drawn from
            ranks ``skip_top + 1 .. mine_depth``.
        max_positives: positives per query (the highest graded first; ``None`` = all).
        title_pairs: extra (title → abstract) groups drawn from each training corpus.
        in_batch_negatives: extra negatives per query taken from the batch (``"mnrl"``).
        holdout_queries: judged queries held out of each training split for the dev set.
        eval_data: dev splits evaluated during training (their first ``eval_queries``
            judged queries); with ``holdout_queries`` both are used.
        test_data: splits evaluated once after training with :class:`crossrank.Reranker`
            on the saved model (``test_queries`` each, all when ``None``).
        budget_minutes: wall-clock limit of the training loop; the learning rate decays to
            zero by the budget or the last step, whichever comes first.
        eval_minutes / eval_steps: how often to run the dev evaluation (time or steps).
        max_length: tokens per (query, document) pair in training and dev evaluation.
        save_max_length: the saved model's default tokens per pair (what
            :class:`crossrank.Reranker` uses unless told); default ``max_length``.
        bf16: mixed precision (``None`` = on when the GPU, or the CPU natively, supports bf16).
        threads: CPU threads for torch during the run (``None`` keeps torch's default); on
            a shared machine one thread per free core avoids costly oversubscription.
    """

    data: tuple[DataSpec, ...] = ()
    backbone: str | None = None
    retriever: str | None = None
    output: Path | None = None
    name: str | None = None
    preset: str | None = None
    # data
    loss: LossName = "mnrl"
    negatives: int = 3
    skip_top: int = 3
    mine_depth: int = 30
    max_positives: int | None = 1
    title_pairs: int = 0
    in_batch_negatives: int = 1
    holdout_queries: int = 0
    eval_data: tuple[DataSpec, ...] = ()
    eval_queries: int = 50
    eval_top_k: int = 30
    eval_top_n: int = 10
    test_data: tuple[DataSpec, ...] = ()
    test_queries: int | None = None
    test_top_k: int = 50
    test_top_n: int = 50
    # optimisation
    max_length: int = 192
    save_max_length: int | None = None
    batch_size: int = 8
    learning_rate: float = 5e-5
    head_learning_rate: float | None = None
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    epochs: float = 1.0
    max_steps: int | None = None
    budget_minutes: float | None = None
    grad_accum: int = 1
    dropout: float | None = None
    bf16: bool | None = None
    seed: int = 12
    device: str = "auto"
    threads: int | None = None
    eval_minutes: float | None = None
    eval_steps: int | None = None
    logging_steps: int = 10
    show_progress: bool | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "data", _specs(self.data, "train", "data"))
        set_(self, "eval_data", _specs(self.eval_data, "test", "eval_data"))
        set_(self, "test_data", _specs(self.test_data, "test", "test_data"))
        if self.output is not None:
            set_(self, "output", Path(self.output).expanduser())
        if self.name is not None:
            check_model_name(self.name)
        if self.loss not in LOSSES:
            msg = f"loss must be one of {', '.join(LOSSES)}; got {self.loss!r}"
            raise InvalidInputError(msg)
        for name in ("batch_size", "grad_accum", "max_length", "mine_depth", "logging_steps"):
            _check_int(name, getattr(self, name), minimum=1)
        for name in ("eval_queries", "eval_top_k", "eval_top_n", "test_top_k", "test_top_n"):
            _check_int(name, getattr(self, name), minimum=1)
        for name in ("negatives", "skip_top", "title_pairs", "holdout_queries", "seed"):
            _check_int(name, getattr(self, name), minimum=0)
        _check_int("in_batch_negatives", self.in_batch_negatives, minimum=0)
        for name in (
            "max_positives",
            "max_steps",
            "eval_steps",
            "test_queries",
            "save_max_length",
            "threads",
        ):
            if getattr(self, name) is not None:
                _check_int(name, getattr(self, name), minimum=1)
        if self.loss == "mnrl" and self.in_batch_negatives < 1:
            msg = (
                "loss 'mnrl' needs in_batch_negatives >= 1; for hard negatives only, use "
                "loss 'listnet' or 'lambda'"
            )
            raise InvalidInputError(msg)
        if self.loss in ("bce", "listnet", "lambda") and self.negatives < 1:
            msg = f"loss {self.loss!r} needs at least one hard negative per query; raise negatives"
            raise InvalidInputError(msg)
        if self.skip_top + self.negatives > self.mine_depth:
            msg = (
                f"mine_depth={self.mine_depth} leaves no room for {self.negatives} negatives "
                f"after skipping the top {self.skip_top}; raise mine_depth to at least "
                f"{self.skip_top + self.negatives}"
            )
            raise InvalidInputError(msg)
        if self.eval_top_n > self.eval_top_k or self.test_top_n > self.test_top_k:
            msg = "eval_top_n/test_top_n cannot exceed eval_top_k/test_top_k (rerank what is found)"
            raise InvalidInputError(msg)
        for name in ("learning_rate", "epochs"):
            _check_float(name, getattr(self, name), positive=True)
        for name in ("head_learning_rate", "budget_minutes", "eval_minutes"):
            if getattr(self, name) is not None:
                _check_float(name, getattr(self, name), positive=True)
        _check_float("weight_decay", self.weight_decay, positive=False)
        if not 0.0 <= self.warmup_ratio < 1.0:
            msg = f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}"
            raise InvalidInputError(msg)
        if self.dropout is not None and not 0.0 <= self.dropout < 1.0:
            msg = f"dropout must be in [0, 1), got {self.dropout}"
            raise InvalidInputError(msg)

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with ``changes`` applied (and checked)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly settings (paths and specs as strings), for the model card."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, tuple):
                value = [str(v) for v in value]
            elif isinstance(value, Path):
                value = str(value)
            out[f.name] = value
        return out


def check_model_name(name: object) -> str:
    """``name`` (``--name``) as a plain folder name under ``<cache>/models``: no path
    separators, not ``.`` or ``..``, so it can never point outside that folder."""
    bad = (
        not isinstance(name, str)
        or not name.strip()
        or name in {".", ".."}
        or any(sep in name for sep in ("/", "\\", "\0"))
        or Path(name).name != name
    )
    if bad:
        msg = (
            f"name must be a plain folder name (no '/', '\\' or '..'), got {name!r}; "
            "to write somewhere else pass output=<folder> (--output)"
        )
        raise InvalidInputError(msg)
    return str(name)


def _check_int(name: str, value: object, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        msg = f"{name} must be an integer >= {minimum}, got {value!r}"
        raise InvalidInputError(msg)


def _check_float(name: str, value: object, *, positive: bool) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or (positive and value <= 0) or (not positive and value < 0):  # type: ignore[operator]
        kind = "a positive" if positive else "a non-negative"
        msg = f"{name} must be {kind} number, got {value!r}"
        raise InvalidInputError(msg)


# The starter recipe. On a GPU: many positives, title→abstract pairs, 7 hard negatives,
# longer inputs and several epochs, capped at 18 minutes of training. On a CPU every pair is
# expensive: MiniLM-L6 trains at about 10 pairs/s in fp32 at 160 tokens on two cores, 27 with
# native bf16 (benchmarks/train_step.py). So the recipe is cut to what teaches the most per
# pair: at most two positives per query, a few title→abstract pairs, 5 hard negatives plus one
# in-batch negative in a softmax (listwise) loss, short inputs, a high learning rate for the
# fresh head, no dropout, two passes, and a 60-minute budget over which the learning rate decays.
_STARTER_COMMON: dict[str, Any] = {
    "preset": "starter",
    "data": ("scifact:train", "nfcorpus:train"),
    "loss": "mnrl",
    "skip_top": 3,
    "holdout_queries": 40,
    "eval_top_k": 30,
    "eval_top_n": 10,
    "test_data": (),
    "warmup_ratio": 0.1,
    "seed": 12,
}
_STARTER_GPU: dict[str, Any] = {
    **_STARTER_COMMON,
    "negatives": 7,
    "mine_depth": 50,
    "max_positives": 4,
    "title_pairs": 4000,
    "in_batch_negatives": 3,
    "max_length": 320,
    "batch_size": 32,
    "learning_rate": 5e-5,
    "head_learning_rate": 1e-3,
    "epochs": 3.0,
    "budget_minutes": 18.0,
    "eval_minutes": 3.0,
}
_STARTER_CPU: dict[str, Any] = {
    **_STARTER_COMMON,
    "negatives": 5,
    "mine_depth": 30,
    "max_positives": 2,
    "title_pairs": 1000,
    "in_batch_negatives": 1,
    "max_length": 160,
    "batch_size": 8,
    "learning_rate": 1e-4,
    "head_learning_rate": 2e-3,
    "dropout": 0.0,
    "epochs": 2.0,
    "budget_minutes": 60.0,
    "eval_minutes": 8.0,
}


def preset_config(name: str, *, gpu: bool) -> TrainConfig:
    """The named preset's settings for a GPU (``gpu=True``) or a CPU run."""
    if name not in PRESETS:
        msg = f"unknown preset {name!r}; available: {', '.join(PRESETS)}"
        raise InvalidInputError(msg)
    return TrainConfig(**(_STARTER_GPU if gpu else _STARTER_CPU))
