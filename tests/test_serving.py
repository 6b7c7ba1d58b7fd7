"""The reranking service over real HTTP: routes, shapes, limits, errors, keys, metrics.

Each server is uvicorn on a free 127.0.0.1 port in a thread (``running_server``), serving
the tiny real model; results are checked against the in-process ``Reranker``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from crossrank import Reranker
from crossrank.serving import ServeConfig, running_server

QUERY = "vitamin d and cancer risk"
DOCS = [
    "vitamin d levels are associated with lower cancer risk in human studies",
    "the mice were treated with protein",
    "blood levels of vitamin d",
    "gene expression in cells",
    "cancer risk",
]
LONG = " ".join(["cancer risk of the disease in patients"] * 20)
MAX_LENGTH = 48


def _config(model: Path, **kw: object) -> ServeConfig:
    return ServeConfig(model=str(model), port=0, max_length=MAX_LENGTH, **kw)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def server(tiny_model: Path) -> Iterator[str]:
    with running_server(_config(tiny_model, max_documents=50, max_request_bytes=20_000)) as url:
        yield url


@pytest.fixture(scope="module")
def reference(tiny_model: Path) -> Reranker:
    return Reranker(tiny_model, max_length=MAX_LENGTH)


def _post(url: str, path: str, body: object, **kw: object) -> httpx.Response:
    return httpx.post(f"{url}{path}", json=body, timeout=30, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("path", ["/v1/rerank", "/v2/rerank"])
def test_cohere_routes_rank_like_the_engine(server: str, reference: Reranker, path: str) -> None:
    docs = [*DOCS[:2], {"text": DOCS[2]}, *DOCS[3:], LONG]
    response = _post(server, path, {"model": "any", "query": QUERY, "documents": docs})
    assert response.status_code == 200, response.text
    body = response.json()
    expected = reference.rerank(QUERY, [*DOCS, LONG])
    assert [r["index"] for r in body["results"]] == [r.index for r in expected]
    for got, want in zip(body["results"], expected):
        assert got["relevance_score"] == pytest.approx(want.score, abs=1e-6)
        assert got["truncated"] is want.truncated
        assert got["n_windows"] == want.n_windows
        assert "document" not in got
    assert body["results"][[r.index for r in expected].index(5)]["truncated"] is True
    assert body["meta"]["api_version"]["version"] == path[2]
    assert body["meta"]["billed_units"]["search_units"] == 1
    assert len(body["id"]) == 32


def test_cohere_top_n_return_documents_and_nulls(server: str, reference: Reranker) -> None:
    body = _post(
        server,
        "/v1/rerank",
        {
            "query": QUERY,
            "documents": DOCS,
            "top_n": 2,
            "return_documents": True,
            "max_tokens_per_doc": None,
            "rank_fields": None,
            "max_chunks_per_doc": None,
        },
    ).json()
    expected = reference.rerank(QUERY, DOCS, top_n=2)
    assert [r["index"] for r in body["results"]] == [r.index for r in expected]
    assert [r["document"]["text"] for r in body["results"]] == [r.document for r in expected]


def test_tei_route_all_texts_sorted_raw_scores_and_text(server: str, reference: Reranker) -> None:
    raw = Reranker(reference.model_name, max_length=MAX_LENGTH, activation="raw")
    body = _post(server, "/rerank", {"query": QUERY, "texts": DOCS}).json()
    expected = reference.rerank(QUERY, DOCS)
    assert [r["index"] for r in body] == [r.index for r in expected]
    assert [r["score"] for r in body] == pytest.approx([r.score for r in expected], abs=1e-6)
    assert all("text" not in r for r in body)
    body = _post(
        server, "/rerank", {"query": QUERY, "texts": DOCS, "raw_scores": True, "return_text": True}
    ).json()
    logits = raw.rerank(QUERY, DOCS)
    assert [r["score"] for r in body] == pytest.approx([r.score for r in logits], abs=1e-6)
    assert [r["text"] for r in body] == [r.document for r in logits]
    assert reference.activation == "sigmoid"  # so the two calls really differ
    assert body[0]["score"] != pytest.approx(expected[0].score)


def test_tei_truncate_false_refuses_a_text_that_does_not_fit(server: str) -> None:
    response = _post(server, "/rerank", {"query": QUERY, "texts": [*DOCS, LONG], "truncate": False})
    assert response.status_code == 400
    assert response.json()["index"] == 5
    assert (
        _post(server, "/rerank", {"query": QUERY, "texts": [LONG], "truncate": True}).status_code
        == 200
    )


def test_empty_documents_give_empty_results(server: str) -> None:
    assert _post(server, "/v2/rerank", {"query": QUERY, "documents": []}).json()["results"] == []
    assert _post(server, "/rerank", {"query": QUERY, "texts": []}).json() == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"documents": ["a"]}, "query"),
        ({"query": "   ", "documents": ["a"]}, "query"),
        ({"query": "q", "documents": "not a list"}, "documents"),
        ({"query": "q", "documents": [1, 2]}, "documents"),
        ({"query": "q", "documents": ["a"], "top_n": 0}, "top_n"),
        ({"query": "q", "documents": ["a"], "rank_fields": ["title"]}, "rank_fields"),
    ],
)
def test_invalid_fields_are_422_naming_the_field(server: str, body: dict, field: str) -> None:
    response = _post(server, "/v2/rerank", body)
    assert response.status_code == 422
    assert field in {str(p) for d in response.json()["detail"] for p in d["loc"]}


def test_invalid_json_is_422(server: str) -> None:
    response = httpx.post(
        f"{server}/v2/rerank", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422


def test_limits_are_413(server: str) -> None:
    too_many = _post(server, "/v2/rerank", {"query": "q", "documents": ["a"] * 51})
    assert too_many.status_code == 413
    assert "51 documents" in too_many.json()["message"]
    assert _post(server, "/rerank", {"query": "q", "texts": ["a"] * 51}).status_code == 413
    too_big = _post(server, "/v2/rerank", {"query": "q", "documents": ["x" * 25_000]})
    assert too_big.status_code == 413
    assert too_big.json()["error_type"] == "request_too_large"

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit holds while streaming
        yield b'{"query": "q", "documents": ["'
        for _ in range(30):
            yield b"x" * 1000
        yield b'"]}'

    streamed = httpx.post(
        f"{server}/v2/rerank", content=chunks(), headers={"content-type": "application/json"}
    )
    assert streamed.status_code == 413
    assert _post(server, "/v2/rerank", {"query": "q", "documents": ["a"] * 50}).status_code == 200


def test_probes_info_and_openapi(server: str) -> None:
    assert httpx.get(f"{server}/health").json() == {"status": "ok"}
    assert httpx.get(f"{server}/ready").json() == {"status": "ready"}
    info = httpx.get(f"{server}/info").json()
    assert info["max_length"] == MAX_LENGTH
    assert info["backend"] == "torch"
    assert info["device"] == "cpu"
    assert info["activation"] == "sigmoid"
    assert info["ready"] is True
    paths = httpx.get(f"{server}/openapi.json").json()["paths"]
    assert {"/v1/rerank", "/v2/rerank", "/rerank", "/health", "/ready", "/metrics", "/info"} <= set(
        paths
    )
    assert {"400", "413", "422", "429"} <= set(paths["/v2/rerank"]["post"]["responses"])


def test_metrics_count_requests_pairs_and_batches(server: str) -> None:
    _post(server, "/v2/rerank", {"query": QUERY, "documents": DOCS})
    _post(server, "/v2/rerank", {"query": "q", "documents": ["a"] * 51})
    text = httpx.get(f"{server}/metrics").text
    assert 'crossrank_requests_total{path="/v2/rerank",status="200"}' in text
    assert 'crossrank_requests_total{path="/v2/rerank",status="413"}' in text
    assert "crossrank_request_latency_seconds_bucket" in text
    assert "crossrank_queue_depth 0.0" in text
    assert "crossrank_pass_pairs_count" in text
    assert "crossrank_batch_padded_tokens_sum" in text
    assert "crossrank_pairs_per_second" in text
    truncated = [
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith("crossrank_documents_truncated_total")
    ]
    assert truncated and truncated[0] >= 1  # LONG, sent by earlier tests of this module
    scored = [
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith("crossrank_pairs_scored_total")
    ]
    assert scored and scored[0] >= len(DOCS)


def test_one_bad_request_does_not_fail_concurrent_good_ones(tiny_model: Path) -> None:
    reference = Reranker(tiny_model, max_length=MAX_LENGTH, overflow="error")
    with running_server(_config(tiny_model, overflow="error")) as url:

        async def main() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=url, timeout=60) as client:
                bodies = [{"query": QUERY, "documents": DOCS} for _ in range(6)]
                bodies.insert(3, {"query": QUERY, "documents": [DOCS[0], LONG, DOCS[1]]})
                return await asyncio.gather(*(client.post("/v2/rerank", json=b) for b in bodies))

        responses = asyncio.run(main())
    bad = responses.pop(3)
    assert bad.status_code == 400
    assert bad.json()["error_type"] == "document_too_long"
    assert bad.json()["index"] == 1
    assert "1" in bad.json()["message"]
    expected = [r.index for r in reference.rerank(QUERY, DOCS)]
    for response in responses:
        assert response.status_code == 200
        assert [r["index"] for r in response.json()["results"]] == expected


def test_api_keys_are_required_when_configured(tiny_model: Path) -> None:
    config = _config(tiny_model, api_keys=("secret-1", "secret-2"))
    assert ServeConfig(api_keys=("k",)).bind_host == "0.0.0.0"
    assert ServeConfig().bind_host == "127.0.0.1"
    with running_server(ServeConfig(**{**config.__dict__, "host": "127.0.0.1"})) as url:
        body = {"query": QUERY, "documents": DOCS}
        assert _post(url, "/v2/rerank", body).status_code == 401
        wrong = _post(url, "/v2/rerank", body, headers={"Authorization": "Bearer secret-3"})
        assert wrong.status_code == 401
        assert wrong.headers["www-authenticate"] == "Bearer"
        basic = _post(url, "/v2/rerank", body, headers={"Authorization": "Basic secret-1"})
        assert basic.status_code == 401
        for key in ("secret-1", "secret-2"):
            ok = _post(url, "/v2/rerank", body, headers={"Authorization": f"Bearer {key}"})
            assert ok.status_code == 200
        assert httpx.get(f"{url}/metrics").status_code == 401
        assert httpx.get(f"{url}/health").status_code == 200
        assert httpx.get(f"{url}/ready").status_code == 200


def test_api_key_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CROSSRANK_API_KEY", "a, b")
    assert ServeConfig.keys_from(None) == ("a", "b")
    assert ServeConfig.keys_from(["c"]) == ("c",)
    monkeypatch.delenv("CROSSRANK_API_KEY")
    assert ServeConfig.keys_from(None) == ()


def test_full_queue_answers_429_with_retry_after(tiny_model: Path) -> None:
    with running_server(_config(tiny_model, max_queue=1, retry_after_s=2)) as url:

        async def main() -> list[httpx.Response]:
            docs = [LONG] * 40
            async with httpx.AsyncClient(base_url=url, timeout=60) as client:
                return await asyncio.gather(
                    *(
                        client.post("/rerank", json={"query": QUERY, "texts": docs})
                        for _ in range(8)
                    )
                )

        responses = asyncio.run(main())
        metrics = httpx.get(f"{url}/metrics").text
    codes = sorted(r.status_code for r in responses)
    assert 200 in codes and 429 in codes
    assert set(codes) == {200, 429}
    refused = next(r for r in responses if r.status_code == 429)
    assert refused.headers["retry-after"] == "2"
    assert refused.json()["error_type"] == "queue_full"
    assert f"crossrank_queue_rejections_total {float(codes.count(429))}" in metrics


def test_body_limit_counts_bytes_not_characters(server: str) -> None:
    body = json.dumps({"query": "q", "documents": ["é" * 9_000]}, ensure_ascii=False).encode()
    assert len(body) > 18_000
    response = httpx.post(
        f"{server}/v2/rerank", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 200  # under 20 000 bytes
    body = json.dumps({"query": "q", "documents": ["é" * 11_000]}, ensure_ascii=False).encode()
    response = httpx.post(
        f"{server}/v2/rerank", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413


def test_config_checks_its_values() -> None:
    from crossrank.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="max_queue"):
        ServeConfig(max_queue=0)
    with pytest.raises(InvalidInputError, match="overflow"):
        ServeConfig(overflow="cut")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="port"):
        ServeConfig(port=70_000)


def test_a_body_that_is_not_utf8_is_422(server: str) -> None:
    response = httpx.post(
        f"{server}/v2/rerank",
        content=b"\x16\xff\xc6\xbe",
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body"]


def test_cli_options_become_the_service_config(monkeypatch: pytest.MonkeyPatch) -> None:
    from crossrank.cli import _build_parser
    from crossrank.cli.serve import config_from_args

    monkeypatch.delenv("CROSSRANK_API_KEY", raising=False)
    args = _build_parser().parse_args(
        [
            "serve",
            "--model",
            "m",
            "--port",
            "9001",
            "--max-queue",
            "3",
            "--max-documents",
            "7",
            "--max-request-bytes",
            "1000",
            "--overflow",
            "error",
            "--backend",
            "onnx",
        ]
    )
    config = config_from_args(args)
    assert (config.model, config.port, config.max_queue, config.max_documents) == ("m", 9001, 3, 7)
    assert (config.max_request_bytes, config.overflow, config.backend) == (1000, "error", "onnx")
    assert config.api_keys == () and config.bind_host == "127.0.0.1"
    monkeypatch.setenv("CROSSRANK_API_KEY", "from-env")
    config = config_from_args(_build_parser().parse_args(["serve"]))
    assert config.api_keys == ("from-env",) and config.bind_host == "0.0.0.0"
    args = _build_parser().parse_args(
        ["serve", "--api-key", "a", "--api-key", "b", "--host", "127.0.0.1"]
    )
    assert config_from_args(args).api_keys == ("a", "b")
    assert config_from_args(args).bind_host == "127.0.0.1"
