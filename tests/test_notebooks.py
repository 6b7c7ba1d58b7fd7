"""The notebooks are committed executed (readers on a code host see the results) and small."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
LIMIT_BYTES = 300_000


def test_there_are_notebooks() -> None:
    assert len(NOTEBOOKS) >= 6


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_with_outputs_and_small(path: Path) -> None:
    assert path.stat().st_size < LIMIT_BYTES, f"{path.name} is over {LIMIT_BYTES} bytes"
    nb = json.loads(path.read_text(encoding="utf-8"))
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert code, "no code cells"
    unexecuted = [i for i, c in enumerate(code) if c.get("execution_count") is None]
    assert not unexecuted, f"code cells {unexecuted} were not executed"
    assert sum(bool(c["outputs"]) for c in code) >= len(code) // 2, "most cells show nothing"
    assert "widgets" not in nb.get("metadata", {})
    for c in code:
        for out in c["outputs"]:
            assert out.get("output_type") != "error", f"an error output in {path.name}"
            assert not (out.get("output_type") == "stream" and out.get("name") == "stderr"), (
                f"a stderr stream (progress bars, warnings) in {path.name}"
            )
