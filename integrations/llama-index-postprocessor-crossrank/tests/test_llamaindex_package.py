"""The distribution's shape: a PEP 420 namespace package like LlamaIndex's own integrations,
typed, with pinned public names and a cheap import."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import llama_index.postprocessor.crossrank as package
import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_namespace_layout() -> None:
    leaf = ROOT / "llama_index" / "postprocessor" / "crossrank"
    assert (leaf / "__init__.py").is_file()
    assert (leaf / "base.py").is_file()
    assert not (ROOT / "llama_index" / "__init__.py").exists()
    assert not (ROOT / "llama_index" / "postprocessor" / "__init__.py").exists()
    assert Path(package.__file__).resolve().parent == leaf.resolve()


def test_is_typed() -> None:
    assert (Path(package.__file__).parent / "py.typed").is_file()


def test_version_and_llamahub_metadata_match_pyproject() -> None:
    tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from 3.11")
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert package.__version__ == pyproject["project"]["version"]
    hub = pyproject["tool"]["llamahub"]
    assert hub["import_path"] == package.__name__
    assert set(hub["class_authors"]) == {"CrossrankRerank"}
    assert pyproject["tool"]["setuptools"]["package-data"][package.__name__] == ["py.typed"]


def test_all_lists_exactly_the_public_names() -> None:
    public = {
        name
        for name, value in vars(package).items()
        if not name.startswith("_") and not isinstance(value, type(sys))
    }
    public.discard("annotations")
    assert set(package.__all__) == public | {"__version__"}


def test_import_loads_no_model_libraries() -> None:
    code = (
        "import json, sys, llama_index.postprocessor.crossrank; "
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'torch', 'transformers', 'sentence_transformers', 'faiss'})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert json.loads(out) == []


def test_missing_llama_index_core_is_named_with_its_install_line() -> None:
    script = "import sys; sys.modules['llama_index.core'] = None; import llama_index.postprocessor.crossrank"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode != 0
    assert (
        "crossrank.errors.MissingExtraError: llama-index-postprocessor-crossrank needs"
        in result.stderr
    )
    assert 'pip install "llama-index-core>=0.12,<0.15"' in result.stderr
