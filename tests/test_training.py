"""crossrank.training and ``crossrank train`` on a tiny offline model and a hand-made collection.

The toy collection has a learnable signal: documents holding the word "yes" are relevant to
every query, the others to none. A real tiny BERT cross-encoder learns it in a few dozen
steps; the tiny bi-encoder (random weights) does not know it, so dense retrieval is weak and
reranking has room to help.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from crossrank.errors import InvalidInputError
from crossrank.training import TrainConfig, pick_negatives
from crossrank.training.config import DataSpec, preset_config
from crossrank.training.data import mine_groups, split_holdout, to_dataset
from crossrank.training.schedule import BudgetClock, progress_lr_factor

FILLER = "the a of to in and or is are was for with on at by from as that this it not".split()
TOPICS = "cell gene protein cancer risk patients study effect disease blood".split()


def _write_toy(folder: Path) -> Path:
    rng = random.Random(0)
    (folder / "qrels").mkdir(parents=True)
    docs = []
    for i in range(30):
        words = [rng.choice(FILLER) for _ in range(6)] + [rng.choice(TOPICS)]
        if i % 3 == 0:
            words.append("yes")
        rng.shuffle(words)
        docs.append({"_id": f"d{i}", "title": "", "text": " ".join(words)})
    queries = [
        {"_id": f"q{i}", "text": f"what {TOPICS[i % len(TOPICS)]} {rng.choice(FILLER)}"}
        for i in range(26)
    ]
    relevant = [d["_id"] for d in docs if "yes" in d["text"].split()]
    lines = "\n".join(json.dumps(x) for x in docs)
    (folder / "corpus.jsonl").write_text(lines + "\n", encoding="utf-8")
    lines = "\n".join(json.dumps(x) for x in queries)
    (folder / "queries.jsonl").write_text(lines + "\n", encoding="utf-8")
    for split, chosen in (("train", queries[:20]), ("test", queries[20:])):
        rows = [f"{q['_id']}\t{d}\t1" for q in chosen for d in relevant]
        text = "query-id\tcorpus-id\tscore\n" + "\n".join(rows) + "\n"
        (folder / "qrels" / f"{split}.tsv").write_text(text, encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write_toy(tmp_path_factory.mktemp("toy") / "toy")


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Any:
    folder = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CROSSRANK_CACHE", str(folder))
        mp.delenv("CROSSRANK_RERANKER", raising=False)
        yield folder


def _tiny_config(toy: Path, tiny_model: Path, tiny_biencoder: Path, **changes: Any) -> TrainConfig:
    settings: dict[str, Any] = {
        "data": (f"{toy}:train",),
        "backbone": str(tiny_model),
        "retriever": str(tiny_biencoder),
        "loss": "listnet",
        "negatives": 3,
        "skip_top": 1,
        "mine_depth": 12,
        "max_positives": 3,
        "holdout_queries": 5,
        "eval_top_k": 30,
        "eval_top_n": 30,
        "max_length": 24,
        "batch_size": 8,
        "learning_rate": 5e-3,
        "epochs": 6.0,
        "eval_steps": 12,
        "logging_steps": 2,
        "device": "cpu",
        "threads": 1,
        "seed": 1,
        "show_progress": False,
    }
    settings.update(changes)
    return TrainConfig(**settings)


@pytest.fixture(scope="module")
def trained(toy: Path, tiny_model: Path, tiny_biencoder: Path, cache: Path) -> Any:
    from crossrank.training import train

    config = _tiny_config(
        toy,
        tiny_model,
        tiny_biencoder,
        output=cache / "out" / "toy-reranker",
        test_data=(f"{toy}:test",),
        test_top_k=30,
        test_top_n=30,
    )
    return train(config)


# -- a real training run ---------------------------------------------------------------------
def test_training_lowers_the_loss_and_beats_the_untrained_model(trained: Any) -> None:
    losses = [loss for _step, loss in trained.loss_history]
    assert len(losses) >= 3
    assert losses[-1] < losses[0] - 0.02
    steps = [step for step, _ in trained.dev_history]
    assert steps[0] == 0  # the untrained baseline
    assert steps[-1] == trained.steps  # the last weights were evaluated too
    untrained = trained.dev_history[0][1]["reranked_ndcg@10"]
    assert trained.best_dev is not None
    assert trained.best_dev["reranked_ndcg@10"] > untrained
    assert trained.best_dev["reranked_ndcg@10"] > trained.best_dev["dense_ndcg@10"]
    assert trained.best_step in steps[1:]


def test_saved_model_loads_in_crossencoder_and_reranker(trained: Any, toy: Path) -> None:
    from sentence_transformers import CrossEncoder

    from crossrank.engine.reranker import Reranker

    pairs = [("what gene", "yes the gene of it"), ("what gene", "no the gene of it")]
    expected = CrossEncoder(str(trained.output), device="cpu").predict(pairs)
    reranker = Reranker(str(trained.output), device="cpu")
    got = reranker.score_pairs(pairs)
    assert got == pytest.approx([float(x) for x in expected], abs=1e-4)
    # The learned signal survives saving and loading: the "yes" documents come first.
    lines = (toy / "corpus.jsonl").read_text(encoding="utf-8").splitlines()
    docs = [json.loads(line)["text"] for line in lines]
    relevant = {i for i, doc in enumerate(docs) if "yes" in doc.split()}
    ranked = reranker.rerank("what cell", docs)
    assert {r.index for r in ranked[: len(relevant)]} == relevant


def test_bf16_on_cpu_trains_and_saves_fp32_weights(
    toy: Path, tiny_model: Path, tiny_biencoder: Path, cache: Path
) -> None:
    import torch
    from safetensors.torch import load_file

    from crossrank.training import train

    config = _tiny_config(
        toy,
        tiny_model,
        tiny_biencoder,
        output=cache / "out" / "toy-bf16",
        bf16=True,
        holdout_queries=0,
        epochs=2.0,
    )
    result = train(config)
    assert result.bf16 is True
    losses = [loss for _step, loss in result.loss_history]
    assert losses[-1] < losses[0]
    weights = load_file(str(result.output / "model.safetensors"))
    assert {w.dtype for w in weights.values()} == {torch.float32}  # autocast, fp32 master weights
    card = json.loads((result.output / "training.json").read_text(encoding="utf-8"))
    assert card["bf16"] is True


def test_bf16_default_follows_the_device(monkeypatch: pytest.MonkeyPatch) -> None:
    from crossrank.training import trainer

    monkeypatch.setattr("crossrank.engine.loading.cpu_has_bf16", lambda *a: True)
    assert trainer._use_bf16(None, "cpu") is True
    assert trainer._use_bf16(False, "cpu") is False
    monkeypatch.setattr("crossrank.engine.loading.cpu_has_bf16", lambda *a: False)
    assert trainer._use_bf16(None, "cpu") is False
    assert trainer._use_bf16(True, "cpu") is True  # honoured, with a warning that it is slow
    assert trainer._use_bf16(None, "mps") is False
    with pytest.raises(InvalidInputError, match="drop --bf16"):
        trainer._use_bf16(True, "mps")


def test_card_and_json_describe_the_run(trained: Any, toy: Path) -> None:
    card = (trained.output / "README.md").read_text(encoding="utf-8")
    assert "toy:train" in card
    assert "(untrained)" in card and "(kept)" in card
    assert f"{trained.steps} optimizer steps" in card
    assert "Test evaluation" in card and f"{toy}:test" in card
    data = json.loads((trained.output / "training.json").read_text(encoding="utf-8"))
    assert data["steps"] == trained.steps
    assert data["best_step"] == trained.best_step
    assert data["config"]["loss"] == "listnet"
    test = data["test"][f"{toy}:test"]
    assert test["n_queries"] == 6
    assert set(test["runs"]) == {"dense", "reranked", "fused"}
    assert test["runs"]["reranked"]["NDCG@10"] > test["runs"]["dense"]["NDCG@10"]


def test_starter_output_is_where_resolution_looks(trained: Any, cache: Path) -> None:
    import shutil

    from crossrank.engine.resolve import resolve_reranker, starter_model_dir
    from crossrank.training import output_dir

    config = preset_config("starter", gpu=False)
    assert output_dir(config) == starter_model_dir()
    assert starter_model_dir().is_relative_to(cache)
    shutil.copytree(trained.output, starter_model_dir())
    try:
        model, reason = resolve_reranker(None)
        assert Path(model) == starter_model_dir()
        assert "starter" in reason
    finally:
        shutil.rmtree(starter_model_dir())
    assert output_dir(config.replace(preset=None, name="mine")) == cache / "models" / "mine"
    with pytest.raises(InvalidInputError, match="--output"):
        output_dir(config.replace(preset=None))


def test_refuses_to_overwrite_a_folder_that_is_not_a_model(
    toy: Path, tiny_model: Path, tiny_biencoder: Path, tmp_path: Path
) -> None:
    from crossrank.training import train

    (tmp_path / "notes.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(InvalidInputError, match="not empty"):
        train(_tiny_config(toy, tiny_model, tiny_biencoder, output=tmp_path))
    assert (tmp_path / "notes.txt").read_text(encoding="utf-8") == "mine"


def _victim(folder: Path) -> Path:
    """A folder that is not a model, with a file in it that must survive."""
    folder.mkdir(parents=True)
    (folder / "notes.txt").write_text("mine", encoding="utf-8")
    return folder


def test_output_through_a_missing_folder_is_checked_where_it_lands(
    toy: Path, tiny_model: Path, tiny_biencoder: Path, tmp_path: Path
) -> None:
    from crossrank.training import output_dir, train

    victim = _victim(tmp_path / "v")
    config = _tiny_config(toy, tiny_model, tiny_biencoder, output=tmp_path / "new" / ".." / "v")
    config = config.replace(max_steps=1, holdout_queries=0)
    with pytest.raises(InvalidInputError, match="not empty and holds no model"):
        train(config)
    assert (victim / "notes.txt").read_text(encoding="utf-8") == "mine"
    assert not (tmp_path / "new").exists()
    assert output_dir(config) == victim.resolve()


@pytest.mark.parametrize("name", ["../../v", "a/b", "..", ".", "", " ", "a\\b", "/abs"])
def test_name_must_be_a_plain_folder_name(name: str) -> None:
    with pytest.raises(InvalidInputError, match="plain folder name"):
        TrainConfig(data=("scifact:train",), name=name)


def test_cli_name_cannot_reach_outside_the_models_folder(
    toy: Path,
    tiny_model: Path,
    tiny_biencoder: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: Any,
) -> None:
    from crossrank.cli import main

    # <cache>/models does not exist yet, so <cache>/models/../../v looked like a new folder.
    monkeypatch.setenv("CROSSRANK_CACHE", str(tmp_path / "cache"))
    victim = _victim(tmp_path / "v")
    code = main(
        [
            "train",
            f"--data={toy}:train",
            f"--backbone={tiny_model}",
            f"--retriever={tiny_biencoder}",
            "--name=../../v",
            "--loss=bce",
            "--negatives=1",
            "--skip-top=1",
            "--mine-depth=4",
            "--max-steps=1",
            "--max-length=24",
            "--device=cpu",
            "--threads=1",
            "--no-progress",
        ]
    )
    assert code == 1
    assert "plain folder name" in capsys.readouterr().err
    assert (victim / "notes.txt").read_text(encoding="utf-8") == "mine"
    assert not (tmp_path / "cache").exists()


def test_a_link_to_a_folder_that_is_not_a_model_is_refused(
    toy: Path, tiny_model: Path, tiny_biencoder: Path, tmp_path: Path
) -> None:
    from crossrank.training import output_dir
    from crossrank.training.trainer import _check_output

    victim = _victim(tmp_path / "v")
    (tmp_path / "link").symlink_to(victim, target_is_directory=True)
    config = _tiny_config(toy, tiny_model, tiny_biencoder, output=tmp_path / "link")
    assert output_dir(config) == victim.resolve()
    with pytest.raises(InvalidInputError, match="not empty and holds no model"):
        _check_output(output_dir(config))
    # config.json alone is not a model: the weights must be there too.
    (victim / "config.json").write_text("{}", encoding="utf-8")
    with pytest.raises(InvalidInputError, match="not empty and holds no model"):
        _check_output(output_dir(config))
    assert (victim / "notes.txt").read_text(encoding="utf-8") == "mine"


def test_a_previous_model_is_replaced_and_nothing_is_left_beside_it(
    toy: Path, tiny_model: Path, tiny_biencoder: Path, tmp_path: Path
) -> None:
    import shutil

    from safetensors.torch import load_file

    from crossrank.training import train

    output = tmp_path / "models" / "mine"
    shutil.copytree(tiny_model, output)
    before = load_file(str(output / "model.safetensors"))
    config = _tiny_config(toy, tiny_model, tiny_biencoder, output=output)
    result = train(config.replace(max_steps=2, holdout_queries=0))
    assert result.output == output.resolve()
    after = load_file(str(output / "model.safetensors"))
    assert any(not before[k].equal(after[k]) for k in before)  # the trained weights
    assert (output / "training.json").is_file()
    assert sorted(p.name for p in output.parent.iterdir()) == ["mine"]  # no staging left


def test_the_output_is_checked_again_before_the_swap(tmp_path: Path) -> None:
    from crossrank.training.trainer import _replace_output

    staging = tmp_path / ".out.partial"
    (staging / "best").mkdir(parents=True)
    (staging / "best" / "config.json").write_text("{}", encoding="utf-8")
    # Someone filled the output folder while the model trained.
    output = _victim(tmp_path / "out")
    with pytest.raises(InvalidInputError, match="not empty"):
        _replace_output(staging / "best", output, staging)
    assert (output / "notes.txt").read_text(encoding="utf-8") == "mine"
    assert (staging / "best" / "config.json").is_file()


# -- the command line ------------------------------------------------------------------------
def test_cli_trains_a_model(
    toy: Path, tiny_model: Path, tiny_biencoder: Path, cache: Path, tmp_path: Path, capsys: Any
) -> None:
    from sentence_transformers import CrossEncoder

    from crossrank.cli import main

    out = tmp_path / "cli-model"
    code = main(
        [
            "train",
            f"--data={toy}:train",
            f"--backbone={tiny_model}",
            f"--retriever={tiny_biencoder}",
            f"--output={out}",
            "--loss=bce",
            "--negatives=2",
            "--skip-top=1",
            "--mine-depth=10",
            "--max-steps=3",
            "--max-length=24",
            "--batch-size=4",
            "--eval-data",
            f"{toy}:test",
            "--eval-queries=3",
            "--device=cpu",
            "--threads=1",
            "--no-progress",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "trained 3 steps" in printed
    assert str(out) in printed
    assert (out / "README.md").is_file()
    scores = CrossEncoder(str(out), device="cpu").predict([("what gene", "yes gene")])
    assert scores.shape == (1,)
    data = json.loads((out / "training.json").read_text(encoding="utf-8"))
    assert data["config"]["negatives"] == 2
    assert data["dev_queries"] == {"toy-test": 3}


def test_cli_preset_values_and_overrides() -> None:
    import argparse

    from crossrank.cli.train import add_parser, config_from_args

    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    args = parser.parse_args(["train", "--preset", "starter", "--budget-minutes", "5", "--lr=2e-4"])
    config = config_from_args(args, gpu=False)
    cpu = preset_config("starter", gpu=False)
    assert config.budget_minutes == 5.0
    assert config.learning_rate == 2e-4
    assert config.data == cpu.data == (DataSpec("scifact", "train"), DataSpec("nfcorpus", "train"))
    assert config.max_length == cpu.max_length
    gpu = config_from_args(parser.parse_args(["train", "--preset", "starter"]), gpu=True)
    assert gpu.bf16 is None and gpu.batch_size > cpu.batch_size


def test_cli_reports_bad_arguments(capsys: Any) -> None:
    from crossrank.cli import main

    assert main(["train", "--batch-size", "8"]) == 1
    assert "--data" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--data", "scifact:train", "--loss", "hinge"])


# -- negative mining -------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(5))
def test_pick_negatives_skips_the_top_ranks_and_relevant_documents(seed: int) -> None:
    ranked = [f"d{i}" for i in range(20)]
    relevant = {"d0", "d5", "d7", "d19"}
    picked = pick_negatives(ranked, relevant, count=6, skip_top=3, rng=random.Random(seed))
    assert len(picked) == 6 == len(set(picked))
    assert not set(picked) & relevant
    assert not set(picked) & set(ranked[:3])
    assert picked == sorted(picked, key=ranked.index)  # rank order kept


def test_pick_negatives_returns_what_is_left_when_the_pool_is_small() -> None:
    picked = pick_negatives(["a", "b", "c", "d"], {"c"}, count=5, skip_top=1, rng=random.Random(0))
    assert picked == ["b", "d"]


class _FixedOrderRetriever:
    """Ranks the corpus in a fixed order for every query (the mining is under test)."""

    def __init__(self, ids: list[str], texts: list[str]) -> None:
        self.ids, self.texts = ids, texts

    def search_batch(self, queries: list[str], top_k: int = 10) -> list[list[Any]]:
        from crossrank.retrieval import SearchHit

        hits = [
            SearchHit(i, t, 1.0 - n / 100) for n, (i, t) in enumerate(zip(self.ids, self.texts))
        ]
        return [hits[:top_k] for _ in queries]


def test_mine_groups_never_uses_positives_or_skipped_ranks(toy: Path) -> None:
    from crossrank.data import load_beir

    collection = load_beir(toy, "train")
    docs = list(collection.corpus.values())
    order = sorted(docs, key=lambda d: "yes" not in d.text.split())  # relevant ones first
    retriever = _FixedOrderRetriever([d.id for d in order], [d.full_text for d in order])
    groups = mine_groups(
        collection, retriever, negatives=4, skip_top=12, depth=20, max_positives=2, seed=3
    )
    relevant_texts = {collection.corpus[d].full_text for d in collection.relevant("q0")}
    skipped = {d.full_text for d in order[:12]}
    assert len(groups) == 2 * len(collection.judged_queries())
    for group in groups:
        assert group.positive in relevant_texts
        assert len(group.negatives) == 4 == len(set(group.negatives))
        assert not set(group.negatives) & relevant_texts
        assert not set(group.negatives) & skipped


def test_mine_groups_fills_up_with_random_documents_when_ranks_run_out(toy: Path) -> None:
    from crossrank.data import load_beir

    collection = load_beir(toy, "train")
    docs = list(collection.corpus.values())
    retriever = _FixedOrderRetriever([d.id for d in docs], [d.full_text for d in docs])
    groups = mine_groups(collection, retriever, ["q1"], negatives=5, skip_top=2, depth=3, seed=0)
    relevant = {collection.corpus[d].full_text for d in collection.relevant("q1")}
    (group,) = groups
    assert len(group.negatives) == 5 == len(set(group.negatives))
    assert not set(group.negatives) & relevant
    assert docs[0].full_text not in group.negatives and docs[1].full_text not in group.negatives


def test_holdout_is_disjoint_and_reproducible() -> None:
    ids = [f"q{i}" for i in range(30)]
    train_ids, held = split_holdout(ids, 7, seed=4)
    assert len(held) == 7 and len(train_ids) == 23
    assert not set(train_ids) & set(held)
    assert split_holdout(ids, 7, seed=4) == (train_ids, held)
    with pytest.raises(InvalidInputError):
        split_holdout(ids[:3], 3, seed=0)


def test_dataset_layout_per_loss() -> None:
    from crossrank.training import TrainingGroup

    groups = [TrainingGroup("q", "pos", ("n1", "n2"), "toy:train")]
    mnrl = to_dataset(groups, "mnrl")
    assert mnrl.column_names == ["query", "positive", "negative_1", "negative_2"]
    bce = to_dataset(groups, "bce")
    assert bce["label"] == [1.0, 0.0, 0.0] and bce["document"] == ["pos", "n1", "n2"]
    listwise = to_dataset(groups, "lambda")
    assert listwise[0] == {"query": "q", "documents": ["pos", "n1", "n2"], "labels": [1, 0, 0]}


# -- budget and schedule ---------------------------------------------------------------------
def test_budget_callback_stops_training_when_the_time_is_spent() -> None:
    from transformers import TrainerControl, TrainerState

    from crossrank.training.callbacks import BudgetCallback

    now = [100.0]
    clock = BudgetClock(60.0, clock=lambda: now[0])
    callback = BudgetCallback(clock, evaluate=True)
    state, control = TrainerState(), TrainerControl()
    callback.on_train_begin(None, state, control)
    state.global_step = 10
    now[0] = 159.0
    callback.on_step_end(None, state, control)
    assert not control.should_training_stop and not callback.stopped
    state.global_step = 11
    now[0] = 160.0
    callback.on_step_end(None, state, control)
    assert control.should_training_stop and control.should_evaluate
    assert callback.stopped_at_step == 11


def test_no_budget_never_stops() -> None:
    from transformers import TrainerControl, TrainerState

    from crossrank.training.callbacks import BudgetCallback

    now = [0.0]
    callback = BudgetCallback(BudgetClock(None, clock=lambda: now[0]))
    state, control = TrainerState(), TrainerControl()
    callback.on_train_begin(None, state, control)
    now[0] = 1e9
    callback.on_step_end(None, state, control)
    assert not control.should_training_stop


def test_learning_rate_follows_steps_or_time_whichever_is_further() -> None:
    assert progress_lr_factor(0, 100, 0.1) == 0.0
    assert progress_lr_factor(5, 100, 0.1) == pytest.approx(0.5)
    assert progress_lr_factor(10, 100, 0.1) == pytest.approx(1.0)
    assert progress_lr_factor(55, 100, 0.1) == pytest.approx(0.5)
    assert progress_lr_factor(100, 100, 0.1) == 0.0
    now = [0.0]
    clock = BudgetClock(1000.0, clock=lambda: now[0])
    clock.start()
    now[0] = 550.0  # half the decay done by time, though few steps were taken
    assert progress_lr_factor(20, 1000, 0.1, clock) == pytest.approx(0.5)
    now[0] = 5000.0
    assert progress_lr_factor(20, 1000, 0.1, clock) == 0.0


# -- configuration ---------------------------------------------------------------------------
def test_data_specs_parse() -> None:
    assert DataSpec.parse("scifact:train") == DataSpec("scifact", "train")
    assert DataSpec.parse("scifact") == DataSpec("scifact", "train")
    assert DataSpec.parse("nfcorpus", default_split="dev") == DataSpec("nfcorpus", "dev")
    assert DataSpec.parse("/data/my:col/x") == DataSpec("/data/my:col/x", "train")
    assert DataSpec.parse("/data/toy:test") == DataSpec("/data/toy", "test")
    with pytest.raises(InvalidInputError):
        DataSpec.parse("scifact:")


@pytest.mark.parametrize(
    "changes",
    [
        {"loss": "hinge"},
        {"negatives": 20, "skip_top": 15, "mine_depth": 30},
        {"batch_size": 0},
        {"learning_rate": -1.0},
        {"warmup_ratio": 1.0},
        {"eval_top_n": 40, "eval_top_k": 30},
        {"loss": "mnrl", "in_batch_negatives": 0},
        {"budget_minutes": 0},
    ],
)
def test_config_rejects_bad_settings(changes: dict[str, Any]) -> None:
    with pytest.raises(InvalidInputError):
        TrainConfig(data=("scifact:train",), **changes)


def test_training_modules_import_without_torch() -> None:
    code = (
        "import sys, crossrank, crossrank.training, crossrank.cli.train\n"
        "heavy = [m for m in ('torch', 'transformers', 'datasets') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "assert crossrank.train is crossrank.training.train\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
