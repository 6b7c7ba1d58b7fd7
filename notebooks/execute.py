"""Execute notebooks in place with this checkout's Python and keep their outputs small.

    .venv/bin/python notebooks/execute.py notebooks/*.ipynb

Each notebook runs in its own folder (as nbmake runs it); stderr streams (progress bars,
library warnings), widget state and execution timings are dropped, so what is committed is
the printed results, the tables and the plots.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

LIMIT_BYTES = 300_000


def strip(nb: nbformat.NotebookNode) -> None:
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        if cell.cell_type != "code":
            continue
        cell.outputs = [
            out
            for out in cell.outputs
            if not (out.output_type == "stream" and out.get("name") == "stderr")
            and "application/vnd.jupyter.widget-view+json" not in out.get("data", {})
        ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per cell")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TQDM_DISABLE", "1")
    for path in args.notebooks:
        nb = nbformat.read(path, as_version=4)
        client = NotebookClient(
            nb,
            timeout=args.timeout,
            kernel_name="python3",
            resources={"metadata": {"path": str(path.resolve().parent)}},
        )
        client.execute()
        strip(nb)
        nbformat.write(nb, path)
        size = path.stat().st_size
        print(f"{path}: {size / 1000:.0f} kB{'  (over the limit!)' if size > LIMIT_BYTES else ''}")
        if size > LIMIT_BYTES:
            sys.exit(1)


if __name__ == "__main__":
    main()
