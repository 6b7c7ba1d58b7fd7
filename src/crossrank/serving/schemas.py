"""Request and response bodies of the service (pydantic; they make the OpenAPI schema).

Two wire formats: Cohere's rerank API (``/v1/rerank`` and ``/v2/rerank``) and
text-embeddings-inference's (``/rerank``). Fields real clients send that the service does
not use are accepted (``null`` included, as the Cohere SDK sends ``null`` for unset
options) and documented as such; crossrank's extras (``truncated``, ``n_windows``,
``span``) ride along in each result, which both formats' clients ignore.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "CohereDocument",
    "CohereRerankRequest",
    "CohereRerankResponse",
    "CohereResult",
    "ErrorResponse",
    "InfoResponse",
    "StatusResponse",
    "TeiRank",
    "TeiRerankRequest",
]


def _utf8(text: str, what: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        msg = f"{what} is not valid UTF-8 text (it holds a lone surrogate)"
        raise ValueError(msg) from None
    return text


def _check_query(query: str) -> str:
    if not query.strip():
        msg = "query is empty; send the user's question as a non-empty string"
        raise ValueError(msg)
    return _utf8(query, "query")


class CohereDocument(BaseModel):
    """A document given as an object; only ``text`` is read."""

    model_config = ConfigDict(extra="allow", strict=True)

    text: str


class CohereRerankRequest(BaseModel):
    """Cohere's rerank request (v1 and v2)."""

    model_config = ConfigDict(extra="ignore", strict=True)

    model: str | None = Field(
        default=None, description="Accepted and ignored: the server serves one model (see /info)."
    )
    query: str = Field(pattern=r"\S", description="The search query (not blank).")
    documents: list[str | CohereDocument] = Field(
        description="Texts, or objects with a `text` field, to rank against the query."
    )
    top_n: int | None = Field(default=None, ge=1, description="Return the best `top_n` only.")
    return_documents: bool | None = Field(
        default=None, description="Echo each document as `{text}` in its result."
    )
    max_tokens_per_doc: int | None = Field(
        default=None,
        ge=1,
        description=(
            "Accepted for compatibility; the server's max_length and overflow policy decide "
            "what is read, and each result's `truncated` says whether a document was cut."
        ),
    )
    rank_fields: list[str] | None = Field(
        default=None, description="Only `text` is supported (the field that is ranked)."
    )
    max_chunks_per_doc: int | None = Field(
        default=None,
        ge=1,
        description="Accepted for compatibility (v1); see the server's overflow.",
    )

    @field_validator("query")
    @classmethod
    def _query(cls, value: str) -> str:
        return _check_query(value)

    @field_validator("documents")
    @classmethod
    def _documents(cls, value: list[str | CohereDocument]) -> list[str | CohereDocument]:
        for i, doc in enumerate(value):
            _utf8(doc if isinstance(doc, str) else doc.text, f"document {i}")
        return value

    @field_validator("rank_fields")
    @classmethod
    def _rank_fields(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and any(f != "text" for f in value):
            msg = "only the 'text' field can be ranked; send documents as strings or {text}"
            raise ValueError(msg)
        return value

    def texts(self) -> list[str]:
        return [d if isinstance(d, str) else d.text for d in self.documents]


class ResultDocument(BaseModel):
    text: str


class CohereResult(BaseModel):
    index: int = Field(description="Position of the document in the request.")
    relevance_score: float = Field(description="The model's score (see /info: activation).")
    document: ResultDocument | None = Field(
        default=None, description="Only with `return_documents`."
    )
    truncated: bool = Field(description="Part of the document was not read by the model.")
    n_windows: int = Field(description="Windows scored (1 unless the server chunks).")
    span: tuple[int, int] | None = Field(
        default=None, description="Character offsets of the text that decided the score."
    )


class BilledUnits(BaseModel):
    search_units: int


class ApiVersion(BaseModel):
    version: str


class CohereMeta(BaseModel):
    api_version: ApiVersion
    billed_units: BilledUnits


class CohereRerankResponse(BaseModel):
    id: str
    results: list[CohereResult] = Field(description="Best first.")
    meta: CohereMeta


class TeiRerankRequest(BaseModel):
    """text-embeddings-inference's ``/rerank`` request."""

    model_config = ConfigDict(extra="ignore", strict=True)

    query: str = Field(pattern=r"\S", description="The search query (not blank).")
    texts: list[str]
    raw_scores: bool = Field(
        default=False, description="Raw logits instead of the server's default scores."
    )
    return_text: bool = Field(default=False, description="Echo each text in its result.")
    truncate: bool | None = Field(
        default=None,
        description=(
            "`false`: refuse (400) a text that does not fit; `true` or absent: the server's "
            "overflow policy."
        ),
    )
    truncation_direction: Literal["Right", "right"] | None = Field(
        default=None, description="Only right truncation (keep the head) is supported."
    )

    @field_validator("query")
    @classmethod
    def _query(cls, value: str) -> str:
        return _check_query(value)

    @field_validator("texts")
    @classmethod
    def _texts(cls, value: list[str]) -> list[str]:
        for i, text in enumerate(value):
            _utf8(text, f"text {i}")
        return value


class TeiRank(BaseModel):
    index: int
    score: float
    text: str | None = None
    truncated: bool
    n_windows: int
    span: tuple[int, int] | None = None


class ErrorResponse(BaseModel):
    message: str = Field(description="What went wrong and what to do.")
    error_type: str = Field(description="A short machine-readable kind.")
    index: int | None = Field(default=None, description="The offending document, when one.")
    n_tokens: int | None = Field(default=None, description="Its length in tokens.")
    budget: int | None = Field(default=None, description="The tokens a document may have.")


class StatusResponse(BaseModel):
    status: str


class InfoResponse(BaseModel):
    model: str
    model_source: str | None = None
    max_length: int | None = None
    backend: str
    device: str | None = None
    dtype: str | None = None
    overflow: str
    activation: str | None = None
    ready: bool
    max_documents: int
    max_request_bytes: int
    max_queue: int
    crossrank_version: str
    extra: dict[str, Any] = Field(default_factory=dict)
