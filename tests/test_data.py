from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from crossrank.data import Collection, Document, Query, load_beir, load_corpus, load_qrels
from crossrank.errors import DataError, InvalidInputError


def write_collection(
    root: Path,
    *,
    corpus: list[dict[str, object]] | None = None,
    queries: list[dict[str, object]] | None = None,
    qrels: str | None = None,
    split: str = "test",
    newline: str = "\n",
) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    corpus = corpus or [
        {"_id": "d1", "title": "Vitamin D", "text": "Vitamin D lowers blood pressure."},
        {"_id": "d2", "text": "Mice lacking the gene live longer."},
        {"_id": "d3", "title": "", "text": "Protein folding in cells."},
    ]
    queries = queries or [
        {"_id": "q1", "text": "does vitamin d affect blood pressure"},
        {"_id": "q2", "text": "gene knockout lifespan in mice"},
        {"_id": "q3", "text": "an unjudged query"},
    ]
    if qrels is None:
        qrels = "query-id\tcorpus-id\tscore\nq1\td1\t2\nq1\td3\t0\nq2\td2\t1\n"
    (root / "corpus.jsonl").write_text(
        "".join(json.dumps(d) + newline for d in corpus), encoding="utf-8", newline=""
    )
    (root / "queries.jsonl").write_text(
        "".join(json.dumps(q) + newline for q in queries), encoding="utf-8", newline=""
    )
    (root / "qrels").mkdir(exist_ok=True)
    (root / "qrels" / f"{split}.tsv").write_text(
        qrels.replace("\n", newline), encoding="utf-8", newline=""
    )
    return root


def test_loads_typed_objects(tmp_path: Path) -> None:
    col = load_beir(write_collection(tmp_path / "mini"))
    assert isinstance(col, Collection)
    assert col.name == "mini"
    assert col.split == "test"
    assert list(col.corpus) == ["d1", "d2", "d3"]
    assert col.corpus["d1"] == Document(
        id="d1", text="Vitamin D lowers blood pressure.", title="Vitamin D"
    )
    assert col.corpus["d1"].full_text == "Vitamin D Vitamin D lowers blood pressure."
    assert col.queries["q2"] == Query(id="q2", text="gene knockout lifespan in mice")
    assert col.qrels == {"q1": {"d1": 2, "d3": 0}, "q2": {"d2": 1}}
    assert col.corpus_file == tmp_path / "mini" / "corpus.jsonl"


def test_missing_title_is_empty_and_full_text_has_no_stray_space(tmp_path: Path) -> None:
    col = load_beir(write_collection(tmp_path / "c"))
    assert col.corpus["d2"].title == ""
    assert col.corpus["d2"].full_text == "Mice lacking the gene live longer."
    assert col.corpus["d3"].full_text == "Protein folding in cells."


def test_graded_labels_and_relevance(tmp_path: Path) -> None:
    qrels = "query-id\tcorpus-id\tscore\nq1\td1\t2\nq1\td2\t1\nq1\td3\t0\nq2\td2\t-1\n"
    col = load_beir(write_collection(tmp_path / "c", qrels=qrels))
    assert col.qrels["q1"] == {"d1": 2, "d2": 1, "d3": 0}
    assert col.relevant("q1") == {"d1": 2, "d2": 1}
    assert col.relevant("q2") == {}
    assert col.relevant("nope") == {}


def test_crlf_files(tmp_path: Path) -> None:
    folder = write_collection(tmp_path / "crlf", newline="\r\n")
    assert b"\r\n" in (folder / "qrels" / "test.tsv").read_bytes()
    col = load_beir(folder)
    assert col.qrels == {"q1": {"d1": 2, "d3": 0}, "q2": {"d2": 1}}
    assert col.corpus["d1"].text == "Vitamin D lowers blood pressure."
    assert col.queries["q1"].text == "does vitamin d affect blood pressure"


def test_header_is_optional_and_blank_lines_are_skipped(tmp_path: Path) -> None:
    col = load_beir(write_collection(tmp_path / "c", qrels="q1\td1\t1\n\nq2\td2\t1\n"))
    assert col.qrels == {"q1": {"d1": 1}, "q2": {"d2": 1}}


def test_judged_queries_in_file_order_with_limit(tmp_path: Path) -> None:
    col = load_beir(write_collection(tmp_path / "c"))
    assert [q.id for q in col.judged_queries()] == ["q1", "q2"]
    assert [q.id for q in col.judged_queries(1)] == ["q1"]
    with pytest.raises(InvalidInputError):
        col.judged_queries(0)


def test_missing_corpus_file(tmp_path: Path) -> None:
    folder = write_collection(tmp_path / "c")
    (folder / "corpus.jsonl").unlink()
    with pytest.raises(DataError, match=r"corpus\.jsonl not found"):
        load_beir(folder)


def test_missing_split_names_available_splits(tmp_path: Path) -> None:
    folder = write_collection(tmp_path / "c")
    with pytest.raises(DataError, match=r"split 'dev'.*available splits: test"):
        load_beir(folder, split="dev")


def test_missing_collection_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        load_beir(tmp_path / "does-not-exist")


def test_malformed_json_line_reports_line_number(tmp_path: Path) -> None:
    folder = write_collection(tmp_path / "c")
    lines = (folder / "corpus.jsonl").read_text().splitlines()
    lines.insert(2, '{"_id": "bad", "text": ')
    (folder / "corpus.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"corpus\.jsonl, line 3: not valid JSON") as info:
        load_beir(folder)
    assert isinstance(info.value, ValueError)


def test_line_number_counts_blank_lines_and_crlf(tmp_path: Path) -> None:
    folder = write_collection(tmp_path / "c", newline="\r\n")
    text = (folder / "queries.jsonl").read_bytes() + b"\r\n" + b'{"_id": "q9"}\r\n'
    (folder / "queries.jsonl").write_bytes(text)
    with pytest.raises(DataError, match=r"queries\.jsonl, line 5: missing \"text\""):
        load_beir(folder)


def test_non_object_line(tmp_path: Path) -> None:
    folder = write_collection(tmp_path / "c")
    with (folder / "queries.jsonl").open("a") as handle:
        handle.write("[1, 2]\n")
    with pytest.raises(DataError, match=r"line 4: expected a JSON object"):
        load_beir(folder)


def test_malformed_qrels_line(tmp_path: Path) -> None:
    folder = write_collection(
        tmp_path / "c", qrels="query-id\tcorpus-id\tscore\nq1\td1\nq2\td2\t1\n"
    )
    with pytest.raises(DataError, match=r"test\.tsv, line 2: expected 3 columns"):
        load_beir(folder)


def test_non_integer_label(tmp_path: Path) -> None:
    folder = write_collection(tmp_path / "c", qrels="q1\td1\thigh\n")
    with pytest.raises(DataError, match=r"line 1: relevance label 'high' is not an integer"):
        load_beir(folder)


def test_conflicting_duplicate_judgment(tmp_path: Path) -> None:
    folder = write_collection(tmp_path / "c", qrels="q1\td1\t1\nq1\td1\t2\n")
    with pytest.raises(DataError, match="line 2"):
        load_beir(folder)


def test_qrels_naming_unknown_documents(tmp_path: Path) -> None:
    folder = write_collection(tmp_path / "c", qrels="q1\td1\t1\nq1\tghost\t1\nq2\tphantom\t1\n")
    with pytest.raises(
        DataError, match=r"2 document\(s\) that are not in the corpus: 'ghost', 'phantom'"
    ):
        load_beir(folder)


def test_qrels_naming_unknown_queries(tmp_path: Path) -> None:
    folder = write_collection(tmp_path / "c", qrels="q1\td1\t1\nq404\td2\t1\n")
    with pytest.raises(DataError, match=r"'q404'"):
        load_beir(folder)


def test_duplicate_document_id(tmp_path: Path) -> None:
    corpus = [{"_id": "d1", "text": "a"}, {"_id": "d2", "text": "b"}, {"_id": "d1", "text": "c"}]
    folder = write_collection(tmp_path / "c", corpus=corpus, qrels="q1\td1\t1\n")
    with pytest.raises(DataError, match=r"line 3: document id 'd1' appears twice"):
        load_beir(folder)


def test_numeric_ids_become_strings(tmp_path: Path) -> None:
    corpus = [{"_id": 7, "text": "seven"}]
    corpus_file = tmp_path / "corpus.jsonl"
    corpus_file.write_text("\n".join(json.dumps(d) for d in corpus))
    assert load_corpus(corpus_file) == {"7": Document(id="7", text="seven")}


def test_gzip_corpus_and_bom(tmp_path: Path) -> None:
    folder = write_collection(tmp_path / "gz")
    raw = (folder / "corpus.jsonl").read_bytes()
    (folder / "corpus.jsonl").unlink()
    with gzip.open(folder / "corpus.jsonl.gz", "wb") as handle:
        handle.write(raw)
    (folder / "queries.jsonl").write_bytes(
        b"\xef\xbb\xbf" + (folder / "queries.jsonl").read_bytes()
    )
    col = load_beir(folder)
    assert len(col.corpus) == 3
    assert col.corpus_file == folder / "corpus.jsonl.gz"
    assert "q1" in col.queries


def test_load_qrels_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        load_qrels(tmp_path / "nope.tsv")


def test_collection_name_resolves_under_shared_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_collection(tmp_path / "data" / "mini")
    monkeypatch.setenv("CROSSRANK_DATA", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    assert load_beir("mini").path == tmp_path / "data" / "mini"
    with pytest.raises(DataError, match=r"collections in .*: mini"):
        load_beir("other")


@pytest.mark.slow
def test_real_collections(shared_data: Path) -> None:
    scifact = load_beir(shared_data / "scifact", "test")
    assert len(scifact.corpus) == 5183
    assert len(scifact.qrels) == 300
    assert sum(len(d) for d in scifact.qrels.values()) == 339
    assert len(scifact.judged_queries()) == 300
    nfcorpus = load_beir(shared_data / "nfcorpus", "dev")  # CRLF qrels, grades 1-2
    assert len(nfcorpus.qrels) == 324
    assert {label for docs in nfcorpus.qrels.values() for label in docs.values()} <= {0, 1, 2}


def test_judged_first_ids_keeps_every_judged_document_then_fills_in_file_order(
    tmp_path: Path,
) -> None:
    col = load_beir(write_collection(tmp_path / "c"), split="test")
    q1, q2 = col.judged_queries()
    # q1 judges d1 and d3 (label 0 counts: it is a judgment), q2 judges d2.
    assert col.judged_first_ids([q1], 1) == ["d1", "d3"]  # judged ones beyond the size
    assert col.judged_first_ids([q2], 2) == ["d2", "d1"]
    assert col.judged_first_ids([q2, q1], 10) == ["d2", "d1", "d3"]
