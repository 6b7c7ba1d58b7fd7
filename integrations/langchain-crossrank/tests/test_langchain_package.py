"""The distribution's shape: version, typing marker, public names, cheap imports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import langchain_crossrank

ROOT = Path(__file__).resolve().parents[1]


def test_version_matches_pyproject() -> None:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert langchain_crossrank.__version__ == project["version"]
    deps = " ".join(project["dependencies"])
    assert "langchain-classic" not in deps
    assert "langchain-community" not in deps


def test_is_typed() -> None:
    assert (Path(langchain_crossrank.__file__).parent / "py.typed").is_file()


def test_all_lists_exactly_the_public_names() -> None:
    public = {
        name
        for name, value in vars(langchain_crossrank).items()
        if not name.startswith("_") and not isinstance(value, type(sys))
    }
    public.discard("annotations")
    assert set(langchain_crossrank.__all__) == public | {"__version__"}
    for name in langchain_crossrank.__all__:
        assert getattr(langchain_crossrank, name) is not None


def test_import_loads_neither_classic_community_nor_torch() -> None:
    code = (
        "import json, sys, langchain_crossrank; "
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'langchain_classic', 'langchain_community', 'torch', 'transformers', "
        "'sentence_transformers', 'faiss'})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert json.loads(out) == []


def test_a_missing_langchain_core_names_the_pip_line() -> None:
    code = "import sys; sys.modules['langchain_core'] = None; import langchain_crossrank"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert "MissingExtraError" in done.stderr
    assert 'pip install "langchain-core>=1.2,<2"' in done.stderr
