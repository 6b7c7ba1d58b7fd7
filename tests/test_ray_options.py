"""Ray settings and command-line flags, checked without starting Ray."""

from __future__ import annotations

from pathlib import Path

import pytest

from crossrank.cli import _build_parser, main
from crossrank.cli.serve_ray import options_from_args
from crossrank.errors import InvalidInputError
from crossrank.serving.ray import RayServeOptions


def test_fixed_replicas_and_resources() -> None:
    options = RayServeOptions(replicas=3, cpus_per_replica=2, gpus_per_replica=0.5)
    assert options.engine_deployment_options() == {
        "num_replicas": 3,
        "max_ongoing_requests": 64,
        "ray_actor_options": {"num_cpus": 2, "num_gpus": 0.5},
    }


def test_autoscaling_replaces_a_fixed_count() -> None:
    options = RayServeOptions(min_replicas=1, max_replicas=4, target_ongoing_requests=16)
    deployment = options.engine_deployment_options()
    assert "num_replicas" not in deployment
    assert deployment["autoscaling_config"] == {
        "min_replicas": 1,
        "max_replicas": 4,
        "target_ongoing_requests": 16,
    }


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"replicas": 0}, "replicas must be a positive integer"),
        ({"min_replicas": 3, "max_replicas": 2}, "below min_replicas"),
        ({"gpus_per_replica": -1}, "non-negative"),
        ({"retries": -1}, "retries"),
        ({"max_ongoing_requests": 0}, "max_ongoing_requests"),
    ],
)
def test_bad_options_are_refused(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        RayServeOptions(**kwargs)  # type: ignore[arg-type]


def test_serve_ray_flags() -> None:
    args = _build_parser().parse_args(
        ["serve", "--ray", "--max-replicas", "4", "--gpus-per-replica", "0.5", "--num-cpus", "2"]
    )
    assert args.ray
    options = options_from_args(args)
    assert (options.min_replicas, options.max_replicas, options.gpus_per_replica) == (1, 4, 0.5)
    plain = _build_parser().parse_args(["serve"])
    assert not plain.ray
    both = _build_parser().parse_args(["serve", "--ray", "--address", "auto", "--num-cpus", "2"])
    with pytest.raises(InvalidInputError, match="--num-cpus sizes a local Ray instance"):
        options_from_args(both)


def test_rerank_batch_refuses_bad_input_before_starting_ray(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing.jsonl"
    code = main(["rerank-batch", "--input", str(missing), "--output", str(tmp_path / "o")])
    assert code == 1
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "in.jsonl").write_text("", encoding="utf-8")
    code = main(
        [
            "rerank-batch",
            "--input",
            str(tmp_path / "in.jsonl"),
            "--output",
            str(tmp_path / "o"),
            "--address",
            "auto",
            "--num-cpus",
            "2",
        ]
    )
    assert code == 1
    assert "--num-cpus sizes a local Ray instance" in capsys.readouterr().err
