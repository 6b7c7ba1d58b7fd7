"""The dense and BM25 index caches: keyed by content, self-repairing, safe to share."""

from __future__ import annotations

import errno
import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from crossrank.data import load_beir
from crossrank.retrieval import cached_bm25, cached_retriever

TEXTS = [
    "vitamin d levels in blood",
    "cancer risk of patients",
    "gene expression in human cells",
    "protein and dna in mice",
    "treatment effects on disease",
    "rna levels were higher",
    "blood cells and protein",
    "studies of cancer in mice",
]


def write_beir(root: Path, texts: list[str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    with (root / "corpus.jsonl").open("w", encoding="utf-8") as handle:
        for i, text in enumerate(texts):
            handle.write(json.dumps({"_id": f"d{i}", "title": "", "text": text}) + "\n")
    (root / "queries.jsonl").write_text(json.dumps({"_id": "q", "text": "blood"}) + "\n")
    (root / "qrels").mkdir(exist_ok=True)
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq\td0\t1\n")
    return root


def kinds(tiny_biencoder: Path) -> dict[str, Callable[..., tuple[Any, bool]]]:
    return {
        "dense": lambda col, root: cached_retriever(col, tiny_biencoder, cache_root=root),
        "bm25": lambda col, root: cached_bm25(col, cache_root=root),
    }


KINDS = ["dense", "bm25"]


def cache_entries(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.parent.parent == root and p.is_dir())


# -- 4: a corpus edited in place, size and mtime kept -----------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_an_edited_corpus_with_the_same_size_and_mtime_is_not_served_a_stale_index(
    tiny_biencoder: Path, tmp_path: Path, kind: str
) -> None:
    build = kinds(tiny_biencoder)[kind]
    folder = write_beir(tmp_path / "col", TEXTS)
    corpus = folder / "corpus.jsonl"
    first, _ = build(load_beir(folder, "test"), tmp_path / "cache")
    assert "vitamin d levels in blood" in [h.text for h in first.search("levels", top_k=8)]

    stat = corpus.stat()
    edited = corpus.read_text().replace("vitamin d levels in blood", "zincum d levels in urines")
    assert len(edited) == stat.st_size
    corpus.write_text(edited)
    os.utime(corpus, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # what cp -p / rsync -a keep
    assert (corpus.stat().st_size, corpus.stat().st_mtime_ns) == (stat.st_size, stat.st_mtime_ns)

    second, reused = build(load_beir(folder, "test"), tmp_path / "cache")
    assert reused is False
    texts = [h.text for h in second.search("levels", top_k=8)]
    assert "zincum d levels in urines" in texts
    assert "vitamin d levels in blood" not in texts


# -- 10: damaged folders repair themselves ---------------------------------------------------------
def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _bad_utf8(path: Path) -> None:
    path.write_bytes(b"\xff\xfe\x80 not utf-8\n" + path.read_bytes())


def _set_field(name: str, key: str, value: object) -> Callable[[Path], None]:
    def damage(folder: Path) -> None:
        meta = json.loads((folder / name).read_text())
        meta[key] = value
        (folder / name).write_text(json.dumps(meta))

    return damage


DAMAGE: dict[str, tuple[str, Callable[[Path], None]]] = {
    "dense-truncated-index": ("dense", lambda f: _truncate(f / "index.faiss")),
    "dense-utf8-documents": ("dense", lambda f: _bad_utf8(f / "documents.jsonl")),
    "dense-utf8-meta": ("dense", lambda f: _bad_utf8(f / "retriever.json")),
    "dense-bad-count": ("dense", _set_field("retriever.json", "count", "many")),
    "dense-bad-dimension": ("dense", _set_field("retriever.json", "dimension", 3)),
    "dense-bad-index-kind": ("dense", _set_field("retriever.json", "index", {"kind": "tree"})),
    "dense-bad-model": ("dense", _set_field("retriever.json", "model", 5)),
    "dense-no-documents": ("dense", lambda f: (f / "documents.jsonl").unlink()),
    "bm25-truncated-index": ("bm25", lambda f: _truncate(f / "index" / "data.csc.index.npy")),
    "bm25-utf8-documents": ("bm25", lambda f: _bad_utf8(f / "documents.jsonl")),
    "bm25-bad-config": ("bm25", _set_field("bm25.json", "config", {"method": "tfidf"})),
    "bm25-bad-count": ("bm25", _set_field("bm25.json", "count", 3)),
    "bm25-no-vocab": ("bm25", lambda f: (f / "index" / "vocab.index.json").unlink()),
}


@pytest.mark.parametrize("case", list(DAMAGE))
def test_a_damaged_cache_folder_is_rebuilt_with_a_warning(
    tiny_biencoder: Path, tmp_path: Path, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    kind, damage = DAMAGE[case]
    build = kinds(tiny_biencoder)[kind]
    collection = load_beir(write_beir(tmp_path / "col", TEXTS), "test")
    root = tmp_path / "cache"
    first, _ = build(collection, root)
    (folder,) = cache_entries(root)
    damage(folder)

    with caplog.at_level(logging.WARNING, logger="crossrank.retrieval.cache"):
        second, reused = build(collection, root)
    assert reused is False
    assert any("unreadable" in r.getMessage() for r in caplog.records)
    assert second.search("blood", top_k=3) == first.search("blood", top_k=3)
    third, reused_again = build(collection, root)  # repaired on disk
    assert reused_again is True
    assert third.search("blood", top_k=3) == first.search("blood", top_k=3)


# -- 10: a failed write keeps the index in memory and leaves no staging folder ---------------------
@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS])
@pytest.mark.parametrize("kind", KINDS)
def test_a_failed_cache_write_warns_and_keeps_the_index_in_memory(
    tiny_biencoder: Path,
    tmp_path: Path,
    kind: str,
    code: int,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    import crossrank.retrieval.bm25 as bm25_module
    import crossrank.retrieval.dense as dense_module

    def fail_after_a_partial_write(folder: Path, *args: Any, **kwargs: Any) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "partial.bin").write_bytes(b"\0" * 64)
        raise OSError(code, os.strerror(code))

    if kind == "dense":
        monkeypatch.setattr(dense_module, "write_saved", fail_after_a_partial_write)
    else:
        monkeypatch.setattr(
            bm25_module.BM25Retriever,
            "save",
            lambda self, folder: fail_after_a_partial_write(Path(folder)),
        )
    build = kinds(tiny_biencoder)[kind]
    collection = load_beir(write_beir(tmp_path / "col", TEXTS), "test")
    root = tmp_path / "cache"
    with caplog.at_level(logging.WARNING, logger="crossrank.retrieval.cache"):
        retriever, reused = build(collection, root)
    assert reused is False
    assert len(retriever) == len(TEXTS)
    assert retriever.search("blood", top_k=2)[0].text in TEXTS
    assert any("could not save" in r.getMessage() for r in caplog.records)
    leftovers = [p.name for p in root.rglob("*") if ".tmp-" in p.name or p.is_dir()]
    assert [n for n in leftovers if n not in ("indexes", "bm25", "locks")] == []

    monkeypatch.undo()
    assert build(collection, root)[1] is False
    assert build(collection, root)[1] is True


# -- 10: a collection name never escapes the cache folder -------------------------------------------
@pytest.mark.parametrize("name", ["../../x", "/tmp/abs", "..", "a/../../b", "ok\0name"])
@pytest.mark.parametrize("kind", KINDS)
def test_a_collection_name_cannot_escape_the_cache_folder(
    tiny_biencoder: Path, tmp_path: Path, kind: str, name: str
) -> None:
    import dataclasses

    build = kinds(tiny_biencoder)[kind]
    collection = load_beir(write_beir(tmp_path / "col", TEXTS), "test")
    renamed = dataclasses.replace(collection, name=name)
    root = tmp_path / "a" / "b" / "cache"
    build(renamed, root)
    (folder,) = cache_entries(root)
    assert folder.resolve().parent == (root / ("indexes" if kind == "dense" else "bm25")).resolve()
    outside = [
        p for p in tmp_path.rglob("*") if not p.is_relative_to(root) and "col" not in p.parts
    ]
    assert outside == [tmp_path / "a", tmp_path / "a" / "b"]


# -- 10: several processes building the same cache at once -------------------------------------------
BUILD_SCRIPT = """
import sys, time
from pathlib import Path
from crossrank.data import load_beir
from crossrank.retrieval import cached_bm25, cached_retriever
kind, model, folder, root, start = sys.argv[1:6]
while time.time() < float(start):
    time.sleep(0.01)
collection = load_beir(folder, "test")
if kind == "dense":
    retriever, reused = cached_retriever(collection, model, cache_root=root, device="cpu")
else:
    retriever, reused = cached_bm25(collection, cache_root=root)
hits = retriever.search("blood", top_k=2)
print("reused" if reused else "built", len(retriever), hits[0].id)
"""


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_processes_building_the_same_cache_at_once_all_succeed(
    tiny_biencoder: Path, tmp_path: Path, kind: str
) -> None:
    import time

    folder = write_beir(tmp_path / "col", TEXTS)
    root = tmp_path / "cache"
    start = str(time.time() + 12)  # let every interpreter import first, then start together
    args = [kind, str(tiny_biencoder), str(folder), str(root), start]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", BUILD_SCRIPT, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [err[-2000:] for _, err in outputs]
    lines = sorted(out.strip() for out, _ in outputs)
    assert len({line.split(" ", 1)[1] for line in lines}) == 1  # same index everywhere
    assert [line.split()[0] for line in lines] == ["built", "reused", "reused"]
    assert len(cache_entries(root)) == 1
    assert not [p for p in root.rglob("*") if ".tmp-" in p.name]
