"""The README's Python snippets run as written, so the quickstart cannot rot."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
_FENCE = re.compile(r"^```python\n(.*?)^```", re.M | re.S)


def snippets() -> list[tuple[str, str]]:
    """(heading, code) of each Python block, named by the nearest ``###`` heading above it."""
    text = README.read_text(encoding="utf-8")
    found = []
    for match in _FENCE.finditer(text):
        headings = re.findall(r"^### (.+)$", text[: match.start()], re.M)
        found.append((headings[-1] if headings else "", match[1]))
    return found


def test_the_readme_has_a_snippet_per_entry_point() -> None:
    titles = [title for title, _ in snippets()]
    assert titles == ["The engine", "Dense retrieval + rerank", "LlamaIndex", "LangChain"]


@pytest.mark.slow
@pytest.mark.parametrize(("title", "code"), snippets(), ids=lambda v: v[:12])
def test_snippet_runs(
    title: str, code: str, tiny_model: Path, shared_data: Path, tmp_path: Path
) -> None:
    from crossrank.paths import shared_starter_dir

    starter = shared_starter_dir()
    model = starter if (starter / "config.json").is_file() else tiny_model
    env = {**os.environ, "CROSSRANK_RERANKER": str(model), "HF_HUB_OFFLINE": "1"}
    env["CROSSRANK_DATA"] = str(shared_data)
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, f"{title}:\n{done.stderr[-3000:]}"
    assert done.stdout.strip(), f"{title} printed nothing"
