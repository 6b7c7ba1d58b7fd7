"""``train``: fine-tune a cross-encoder on BEIR training splits with mined hard negatives.

The run goes: prepare the data (:mod:`crossrank.training.prepare`), evaluate the untrained
model on the dev sets, train with sentence-transformers' ``CrossEncoderTrainer`` under a
budget-aware learning-rate schedule, keep the checkpoint with the best dev reranked NDCG@10,
move it into the output folder, optionally evaluate it on test splits with
:class:`crossrank.Reranker`, and write the model card.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crossrank.errors import InvalidInputError, InvalidModelError, ModelNotFoundError
from crossrank.training.config import TrainConfig, check_model_name
from crossrank.training.data import to_dataset
from crossrank.training.evaluator import PRIMARY, evaluate_model, restrict
from crossrank.training.result import TrainResult
from crossrank.training.schedule import BudgetClock, progress_lr_factor

if TYPE_CHECKING:
    from crossrank.training.prepare import Prepared

__all__ = ["TrainResult", "output_dir", "train"]

logger = logging.getLogger(__name__)

_BEST_METRIC = f"eval_dev_{PRIMARY}"


def output_dir(config: TrainConfig) -> Path:
    """``config.output``; else the starter slot for the starter preset (where
    :func:`crossrank.engine.resolve.resolve_reranker` looks); else ``<cache>/models/<name>``.

    The path is absolute and resolved (``..`` and symbolic links followed), so the folder
    that is checked is the folder that is written.
    """
    from crossrank.engine.resolve import starter_model_dir
    from crossrank.paths import cache_dir

    if config.output is not None:
        return _resolved(config.output)
    if config.preset == "starter":
        return _resolved(starter_model_dir())
    if config.name:
        return _resolved(cache_dir() / "models" / check_model_name(config.name))
    msg = "say where the model goes: pass output=<folder> (--output) or name=<name> (--name)"
    raise InvalidInputError(msg)


def _use_bf16(asked: bool | None, device: str) -> bool:
    """bf16 mixed precision: on by default on a bf16 GPU and on a CPU that has native bf16
    (where it trains about twice as fast as fp32); weights and the optimizer stay fp32."""
    import torch

    from crossrank.engine.loading import cpu_has_bf16

    if device.startswith("cuda"):
        supported = bool(torch.cuda.is_bf16_supported())
        if asked and not supported:
            msg = "this GPU has no bf16 support; drop bf16 (--no-bf16)"
            raise InvalidInputError(msg)
        return supported if asked is None else asked
    if device != "cpu":
        if asked:
            msg = f"bf16 training is supported on CUDA and CPU, not on {device!r}; drop --bf16"
            raise InvalidInputError(msg)
        return False
    native = cpu_has_bf16()
    if asked and not native:
        logger.warning("this CPU has no native bf16 (AVX512-BF16/AMX): bf16 will be slow")
    return native if asked is None else asked


def _resolved(path: Path) -> Path:
    """``path`` made absolute with ``..`` and symbolic links resolved, even where parts of
    it do not exist yet (``/tmp/new/../v`` is ``/tmp/v`` whether or not ``/tmp/new`` is)."""
    return Path(os.path.realpath(Path(path).expanduser()))


_WEIGHTS = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json")


def _holds_model(folder: Path) -> bool:
    """Whether ``folder`` holds a saved model (its config and its weights)."""
    return (folder / "config.json").is_file() and any((folder / w).is_file() for w in _WEIGHTS)


def _check_output(output: Path) -> None:
    """Refuse an output that training must not replace: a file, a symbolic link, or a
    folder with content that is not a saved model. ``output`` is already resolved."""
    if output.is_symlink() or (output.exists() and not output.is_dir()):
        msg = f"output {output} is not a folder; pass a new or empty folder"
        raise InvalidInputError(msg)
    if output.is_dir() and any(output.iterdir()) and not _holds_model(output):
        msg = (
            f"output {output} is not empty and holds no model; pass a new or empty folder "
            "(training replaces only a folder that holds a model)"
        )
        raise InvalidInputError(msg)


def _replace_output(final: Path, output: Path, staging: Path) -> None:
    """Move the trained model folder ``final`` to ``output``, checked again (the folder
    may have changed during training). A previous model there is first moved into this
    run's ``staging`` folder, which the caller removes; nothing else is ever deleted."""
    _check_output(output)
    if output.is_dir() and any(output.iterdir()):
        os.replace(output, staging / "replaced")
    elif output.is_dir():
        output.rmdir()  # empty: rmdir refuses anything else
    os.replace(final, output)


def _load_backbone(config: TrainConfig, backbone: str, device: str) -> Any:
    from sentence_transformers import CrossEncoder

    config_kwargs: dict[str, Any] = {}
    if config.dropout is not None:
        for key in ("hidden_dropout_prob", "attention_probs_dropout_prob", "classifier_dropout"):
            config_kwargs[key] = config.dropout
    try:
        model = CrossEncoder(
            backbone,
            num_labels=1,
            max_length=config.max_length,
            device=device,
            config_kwargs=config_kwargs or None,
        )
    except OSError as exc:
        msg = f"could not load backbone {backbone!r}: {exc}; pass a local model folder"
        raise ModelNotFoundError(msg) from exc
    if int(model.num_labels) != 1:
        msg = f"backbone {backbone!r} has {model.num_labels} labels; a reranker needs one"
        raise InvalidModelError(msg)
    return model


def _make_trainer(clock: BudgetClock, warmup_ratio: float, **kwargs: Any) -> Any:
    """A ``CrossEncoderTrainer`` whose learning rate follows :func:`progress_lr_factor`."""
    from sentence_transformers.cross_encoder import CrossEncoderTrainer
    from torch.optim.lr_scheduler import LambdaLR

    class BudgetAwareTrainer(CrossEncoderTrainer):  # type: ignore[misc]
        def create_scheduler(self, num_training_steps: int, optimizer: Any = None) -> Any:
            if getattr(self, "lr_scheduler", None) is None:
                factor = functools.partial(
                    progress_lr_factor,
                    total_steps=num_training_steps,
                    warmup_ratio=warmup_ratio,
                    clock=clock,
                )
                self.lr_scheduler = LambdaLR(optimizer or self.optimizer, factor)
                self._created_lr_scheduler = True
            return self.lr_scheduler

    return BudgetAwareTrainer(**kwargs)


def _training_args(config: TrainConfig, folder: Path, device: str, bf16: bool, model: Any) -> Any:
    from sentence_transformers.base.sampler import BatchSamplers
    from sentence_transformers.cross_encoder import CrossEncoderTrainingArguments

    from crossrank.training.losses import head_parameter_pattern

    mapping: dict[str, float] = {}
    if config.head_learning_rate is not None:
        pattern = head_parameter_pattern([f"model.{n}" for n, _ in model.named_parameters()])
        if pattern is not None:
            mapping[pattern] = config.head_learning_rate
    sampler = BatchSamplers.NO_DUPLICATES if config.loss == "mnrl" else BatchSamplers.BATCH_SAMPLER
    return CrossEncoderTrainingArguments(
        output_dir=str(folder),
        num_train_epochs=config.epochs,
        max_steps=config.max_steps or -1,
        per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum,
        learning_rate=config.learning_rate,
        learning_rate_mapping=mapping,
        weight_decay=config.weight_decay,
        bf16=bf16,
        seed=config.seed,
        data_seed=config.seed,
        eval_strategy="no",
        save_strategy="no",
        logging_steps=config.logging_steps,
        logging_first_step=True,
        report_to="none",
        disable_tqdm=config.show_progress is False,
        batch_sampler=sampler,
        dataloader_num_workers=0,
        use_cpu=device == "cpu",
    )


def _set_default_length(folder: Path, length: int) -> None:
    """Make ``length`` the saved model's default tokens per pair."""
    from sentence_transformers import CrossEncoder

    model = CrossEncoder(str(folder), device="cpu")
    model.max_seq_length = length
    model.save(str(folder), create_model_card=False)


def _evaluate_saved(
    config: TrainConfig, output: Path, device: str, prepared: Prepared
) -> dict[str, dict[str, Any]]:
    from crossrank.data import load_beir
    from crossrank.engine.loading import clear_registry
    from crossrank.engine.reranker import Reranker
    from crossrank.training.evaluator import DevSet

    clear_registry()  # the folder may hold a model loaded earlier in this process
    reranker = Reranker(str(output), device=device)
    results: dict[str, dict[str, Any]] = {}
    for spec in config.test_data:
        collection = load_beir(spec.collection, spec.split)
        ids = [q.id for q in collection.judged_queries(config.test_queries)]
        subset = DevSet(str(spec), restrict(collection, ids), prepared.retrievers.get(collection))
        ((_name, report),) = evaluate_model(
            [subset],
            reranker,
            top_k=config.test_top_k,
            top_n=config.test_top_n,
            show_progress=config.show_progress,
        )
        results[str(spec)] = {
            "n_queries": report.n_queries,
            "top_k": report.top_k,
            "top_n": report.top_n,
            "max_length": reranker.max_length,
            "truncated_documents": report.truncated_documents,
            "runs": {run.name: dict(run.metrics) for run in report.runs},
        }
    return results


def train(config: TrainConfig) -> TrainResult:
    """Fine-tune a cross-encoder as ``config`` says; return what was done and measured.

    The model folder (loadable by :class:`crossrank.Reranker` and
    ``sentence_transformers.CrossEncoder``) is written to :func:`output_dir` with a model
    card (``README.md``) and the same facts as JSON (``training.json``).

    The output must be new, empty, or hold a model (``config.json`` and its weights), which
    the new model then replaces; anything else is refused before training starts, and
    checked again before the swap. The run works in a fresh hidden folder beside the output
    and removes nothing else. ``name`` must be a plain folder name.
    """
    import torch

    threads = torch.get_num_threads()
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    try:
        return _train(config)
    finally:
        torch.set_num_threads(threads)


def _train(config: TrainConfig) -> TrainResult:
    from transformers import set_seed

    from crossrank.engine.loading import resolve_device
    from crossrank.paths import default_biencoder
    from crossrank.training.prepare import prepare

    if not config.data:
        msg = "no training data: pass data=['scifact:train'] (--data scifact:train)"
        raise InvalidInputError(msg)
    output = output_dir(config)
    _check_output(output)
    device = resolve_device(config.device)
    bf16 = _use_bf16(config.bf16, device)
    backbone = config.backbone or default_biencoder()
    set_seed(config.seed)

    started = time.monotonic()
    prepared = prepare(config, device)

    output.parent.mkdir(parents=True, exist_ok=True)
    # A fresh folder beside the output, made by this run: the only folder it removes whole.
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.partial-", dir=output.parent))
    try:
        return _train_into(config, output, staging, device, bf16, backbone, prepared, started)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _train_into(
    config: TrainConfig,
    output: Path,
    staging: Path,
    device: str,
    bf16: bool,
    backbone: str,
    prepared: Prepared,
    started: float,
) -> TrainResult:
    from crossrank.training.callbacks import (
        BestCheckpointCallback,
        BudgetCallback,
        EvaluationScheduleCallback,
    )
    from crossrank.training.card import write_card
    from crossrank.training.evaluator import make_dev_evaluator
    from crossrank.training.losses import build_loss

    dataset = to_dataset(prepared.groups, config.loss)
    model = _load_backbone(config, backbone, device)
    prepare_seconds = time.monotonic() - started
    logger.info("%d training groups from %s", len(prepared.groups), prepared.sources)

    clock = BudgetClock(None if config.budget_minutes is None else config.budget_minutes * 60.0)
    evaluator = None
    callbacks: list[Any] = [BudgetCallback(clock, evaluate=bool(prepared.dev_sets))]
    best = None
    if prepared.dev_sets:
        evaluator = make_dev_evaluator(
            prepared.dev_sets,
            top_k=config.eval_top_k,
            top_n=config.eval_top_n,
            batch_size=config.batch_size * 4,
        )
        every = None if config.eval_minutes is None else config.eval_minutes * 60.0
        callbacks.append(
            EvaluationScheduleCallback(clock, every_steps=config.eval_steps, every_seconds=every)
        )
        best = BestCheckpointCallback(staging / "best", _BEST_METRIC)
        callbacks.append(best)
        evaluator(model, steps=0)  # the untrained model: the baseline of the card
    trainer = _make_trainer(
        clock,
        config.warmup_ratio,
        model=model,
        args=_training_args(config, staging / "trainer", device, bf16, model),
        train_dataset=dataset,
        loss=build_loss(model, config),
        evaluator=evaluator,
        callbacks=callbacks,
    )
    trainer.train()
    train_seconds = clock.elapsed()
    budget_cb = callbacks[0]

    final = staging / "best"
    if best is None or best.best_step is None:
        final = staging / "final"
        model.save(str(final), create_model_card=False)
    save_length = config.save_max_length or config.max_length
    if save_length != config.max_length:
        _set_default_length(final, save_length)
    _replace_output(final, output, staging)

    state = trainer.state
    result = TrainResult(
        output=output,
        config=config,
        backbone=backbone,
        retriever=prepared.retrievers.model_name,
        device=device,
        bf16=bool(bf16),
        sources=dict(prepared.sources),
        dev_queries=dict(prepared.dev_queries),
        steps=int(state.global_step),
        max_steps=int(state.max_steps),
        epochs=float(state.epoch or 0.0),
        prepare_seconds=prepare_seconds,
        train_seconds=train_seconds,
        stopped_by_budget=budget_cb.stopped,
        best_step=None if best is None else best.best_step,
        loss_history=tuple(
            (int(e["step"]), float(e["loss"])) for e in state.log_history if "loss" in e
        ),
        dev_history=tuple(evaluator.history) if evaluator is not None else (),
        notes=tuple(prepared.notes),
    )
    write_card(result)
    if config.test_data:
        result = replace(result, test=_evaluate_saved(config, output, device, prepared))
        write_card(result)
    return result
