"""What every framework adapter does the same way: the engine options, building the engine,
pickling and copying, the ``top_n`` check, the once-per-instance truncation warning, and naming
the install line of a missing host framework.

Only the adapters (the LlamaIndex and LangChain packages, which depend on pydantic) import this
module; ``import crossrank`` never does. Each adapter subclasses :class:`EngineOptions` next to
its host's base class and adds only its host-specific options.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_serializer, field_validator

from crossrank.errors import CrossrankError, InvalidInputError, MissingExtraError
from crossrank.ranking.context import DEFAULT_SEPARATOR, DEFAULT_TEMPLATE, ContextPacker
from crossrank.ranking.results import check_positive_int
from crossrank.types import Overflow, RerankResult

if TYPE_CHECKING:
    from crossrank.engine.reranker import Reranker

__all__ = [
    "SPAN_KEY",
    "TRUNCATED_KEY",
    "WINDOWS_KEY",
    "EngineNotSerializableError",
    "EngineOptions",
    "PackerOptions",
    "build_reranker",
    "check_top_n",
    "read_metadata",
    "refuse_engine_and_options",
    "require_host",
]

TRUNCATED_KEY = "crossrank_truncated"
"""Metadata key: ``True`` when the model did not read the whole text (``overflow="truncate"``)."""
WINDOWS_KEY = "crossrank_n_windows"
"""Metadata key: how many windows of the text were scored (1 unless ``overflow="chunk"``)."""
SPAN_KEY = "crossrank_span"
"""Metadata key: ``[start, end]`` character offsets of the text that decided the score (the
kept head of a truncated text, the best window of a chunked one); absent when unknown."""
READ_KEYS = (TRUNCATED_KEY, WINDOWS_KEY, SPAN_KEY)

_INJECTED_PREFIX = "<injected engine "


class EngineNotSerializableError(CrossrankError, TypeError):
    """An adapter holding an injected engine was pickled, or restored from a dump, and the
    engine cannot travel with it (the message says what to pass instead)."""


def require_host(module: str, requirement: str, integration: str) -> None:
    """Import the host framework ``module`` an integration needs, or raise
    :class:`~crossrank.MissingExtraError` naming the ``pip install`` line of ``requirement``."""
    try:
        importlib.import_module(module)
    except ImportError as exc:
        package = requirement.split(">")[0].split("<")[0]
        error = MissingExtraError(package, "", integration)
        error.msg = (
            f"{integration} needs {package}, which is not installed. Install it with: "
            f'pip install "{requirement}"'
        )
        raise error from exc


def refuse_engine_and_options(injected: object, options_set: Sequence[str], field: str) -> None:
    """Raise when both an engine (``field=``) and engine options were given."""
    if injected is not None and options_set:
        msg = (
            f"pass either {field}= (an engine already configured) or engine options "
            f"({', '.join(options_set)}), not both; set those options on the engine you pass"
        )
        raise InvalidInputError(msg)


def build_reranker(explicit: Mapping[str, Any], reranker_kwargs: Mapping[str, Any]) -> Reranker:
    """A :class:`~crossrank.Reranker` from an adapter's explicit options (``model`` and keyword
    arguments) plus ``reranker_kwargs``, whose names are checked against the engine's own."""
    from crossrank.engine.reranker import Reranker

    allowed = set(inspect.signature(Reranker).parameters) - set(explicit)
    unknown = sorted(set(reranker_kwargs) - allowed)
    if unknown:
        msg = (
            f"reranker_kwargs has options crossrank.Reranker does not take: "
            f"{', '.join(unknown)}; use the fields {', '.join(explicit)} or one of "
            f"{', '.join(sorted(allowed))}"
        )
        raise InvalidInputError(msg)
    options = dict(explicit)
    model = options.pop("model", None)
    return Reranker(model, **options, **reranker_kwargs)


def check_top_n(top_n: object) -> int | None:
    """``top_n`` as an ``int``, or ``None`` (all); the one check both adapters make."""
    return None if top_n is None else check_positive_int("top_n", top_n)


def read_metadata(result: RerankResult) -> dict[str, Any]:
    """How the model read a result's text, as the metadata the adapters write (see the keys)."""
    data: dict[str, Any] = {TRUNCATED_KEY: bool(result.truncated)}
    data[WINDOWS_KEY] = int(result.n_windows)
    if result.span is not None:
        data[SPAN_KEY] = [int(result.span[0]), int(result.span[1])]
    return data


def _qualname(obj: object) -> str:
    kind = type(obj)
    return f"{kind.__module__}.{kind.__qualname__}"


def _pickles_itself(engine: object) -> bool:
    """False for a :class:`crossrank.Reranker` (a loaded model, locks, threads) unless its class
    learns to pickle itself; other engines are left to ``pickle``."""
    module = sys.modules.get("crossrank.engine.reranker")
    if module is None or not isinstance(engine, module.Reranker):
        return True
    own = vars(type(engine))
    return any(name in own for name in ("__reduce__", "__reduce_ex__", "__getstate__"))


class EngineOptions(BaseModel):
    """How to build a :class:`crossrank.Reranker` when no engine is passed in (``reranker=``).

    The common settings are fields; any other ``Reranker`` keyword argument (``query_max_tokens``,
    ``stride``, ``aggregate``, ``token_budget``, ``cache_size``, ``model_kwargs``, ...) goes in
    ``reranker_kwargs``, checked against the engine's signature. Subclasses declare the
    ``reranker`` field (the injected engine) and may add options: list them in
    ``_explicit_options`` and map them in :meth:`_engine_kwargs`.

    Pickling carries the options, not the loaded model (the copy builds its engine on first use,
    from the model the original resolved); an injected engine travels only when it pickles
    itself. ``copy.deepcopy`` shares the engine. A dump (``model_dump``/``to_dict``) names an
    injected engine instead of holding it; validating that dump again asks for the engine.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid", protected_namespaces=())

    _explicit_options: ClassVar[tuple[str, ...]] = (
        "model",
        "device",
        "dtype",
        "max_length",
        "overflow",
        "activation",
    )

    model: str | Path | None = Field(
        default=None,
        description=(
            "A local cross-encoder folder or hub id; None lets crossrank resolve it "
            "($CROSSRANK_RERANKER, then the starter model, then the default hub model)."
        ),
    )
    device: str = Field(
        default="auto",
        description="'auto' (CUDA when available, else CPU), 'cpu', 'cuda[:N]' or 'mps'.",
    )
    dtype: str = Field(
        default="auto",
        description=(
            "'auto' (bf16/fp16 on CUDA, fp32 on CPU), 'float32', 'bfloat16' or 'float16'; "
            "scores are computed in fp32 either way."
        ),
    )
    max_length: int | None = Field(
        default=None,
        ge=1,
        description="Tokens per (query, text) pair; default the model's configured length.",
    )
    overflow: Overflow = Field(
        default="truncate",
        description="A text that does not fit is cut, scored in windows, or refused.",
    )
    activation: Literal["auto", "raw", "sigmoid"] = Field(
        default="auto",
        description="Scores as raw logits or sigmoid probabilities; 'auto' follows the model.",
    )
    reranker_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="Other keyword arguments for crossrank.Reranker."
    )

    _engine: Any = PrivateAttr(default=None)
    _warned_truncation: bool = PrivateAttr(default=False)

    def __init__(self, **data: Any) -> None:
        if "top_n" in type(self).model_fields:
            check_top_n(data.get("top_n"))
        super().__init__(**data)
        self._start_engine()

    # -- the engine -----------------------------------------------------------------------------
    def _options_set(self) -> list[str]:
        """The engine options given a value other than their default."""
        fields = type(self).model_fields
        return [
            name
            for name in (*self._explicit_options, "reranker_kwargs")
            if name in self.model_fields_set
            and getattr(self, name) != fields[name].get_default(call_default_factory=True)
        ]

    def _check_not_both(self, injected: object, field: str) -> None:
        refuse_engine_and_options(injected, self._options_set(), field)

    def _engine_kwargs(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """The engine's explicit keyword arguments and its ``reranker_kwargs``."""
        explicit = {name: getattr(self, name) for name in self._explicit_options}
        return explicit, dict(self.reranker_kwargs)

    def _build_reranker(self) -> Reranker:
        return build_reranker(*self._engine_kwargs())

    def _start_engine(self) -> None:
        """Check the options and build or take the engine."""
        injected = self.__dict__.get("reranker")
        self._check_not_both(injected, "reranker")
        self._engine = injected if injected is not None else self._build_reranker()

    def _current_engine(self) -> Any:
        """The engine; built on first use after unpickling or ``model_validate``."""
        if self._engine is None:
            self._start_engine()
        return self._engine

    # -- serialisation --------------------------------------------------------------------------
    @field_validator("reranker", mode="before", check_fields=False)
    @classmethod
    def _refuse_a_dumped_engine(cls, value: object) -> object:
        if isinstance(value, str) and value.startswith(_INJECTED_PREFIX):
            msg = (
                f"this {cls.__name__} was dumped with an injected engine ({value}), and an "
                "engine is not serialised: pass it again with the rest of the dump (e.g. "
                f"{cls.__name__}(**{{**data, 'reranker': engine}}) or "
                f"{cls.__name__}.from_dict(data, reranker=engine)), or give engine options "
                "(model=..., device=...) instead of reranker= so the dump carries them"
            )
            raise EngineNotSerializableError(msg)
        return value

    @field_serializer("reranker", check_fields=False)
    def _name_the_engine(self, value: object) -> str | None:
        return None if value is None else f"{_INJECTED_PREFIX}{_qualname(value)}>"

    def __getstate__(self) -> dict[Any, Any]:
        # pydantic's own state: a host's __getstate__ may try to pickle the engine (LlamaIndex
        # pickles each value to drop what fails, loaded model included)
        state = BaseModel.__getstate__(self)
        injected = self.__dict__.get("reranker")
        if injected is not None and not _pickles_itself(injected):
            name = type(self).__name__
            msg = (
                f"{name}(reranker=<{_qualname(injected)}>) cannot be pickled: the engine holds a "
                f"loaded model. Build the {name} from engine options instead ({name}(model=..., "
                "device=..., ...)): pickling then carries the options, and the copy loads the "
                "model once per process"
            )
            raise EngineNotSerializableError(msg)
        fields = dict(state["__dict__"])
        engine = self._engine
        if injected is None and fields.get("model") is None and engine is not None:
            # the copy must load the model this one resolved, whatever its environment says
            fields["model"] = getattr(engine, "model_name", None)
        private = dict(state.get("__pydantic_private__") or {})
        private["_engine"] = None
        return {**state, "__dict__": fields, "__pydantic_private__": private}

    def __setstate__(self, state: dict[Any, Any]) -> None:
        # pydantic's own: the engine is built on first use (a host's __setstate__ may rebuild
        # it from whatever survived, or fall back silently)
        BaseModel.__setstate__(self, state)

    def __deepcopy__(self, memo: dict[int, Any] | None = None) -> Any:
        memo = {} if memo is None else memo
        for shared in (self.__dict__.get("reranker"), self._engine):
            if shared is not None:
                memo.setdefault(id(shared), shared)
        return super().__deepcopy__(memo)

    # -- reporting ------------------------------------------------------------------------------
    def _warn_truncation_once(
        self, results: Sequence[RerankResult], logger: logging.Logger
    ) -> None:
        """Log one warning the first time this instance returns a text the model cut."""
        if self._warned_truncation:
            return
        cut = sum(bool(r.truncated) for r in results)
        if cut:
            self._warned_truncation = True
            logger.warning(
                "%s: %d of %d returned texts did not fit the model and were truncated; "
                "metadata[%r] marks them (this is logged once per %s). Use overflow='chunk' "
                "to score them whole",
                type(self).__name__,
                cut,
                len(results),
                TRUNCATED_KEY,
                type(self).__name__,
            )


class PackerOptions(BaseModel):
    """The options of :class:`crossrank.ContextPacker` as fields, and the packer built from
    them once (:attr:`packer`), for the adapters' context packers to subclass."""

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid", protected_namespaces=())

    budget_tokens: int = Field(
        default=1024,
        ge=1,
        description="Most tokens in the context (templates and separators included).",
    )
    tokenizer: Any = Field(
        default=None,
        exclude=True,
        description="The LLM's tokenizer: a Hugging Face folder or hub id, a tokenizer object "
        "(tiktoken too) or a callable text -> token count (default: crossrank's offline "
        "WordPiece tokenizer).",
    )
    passage: Literal["window", "document"] = Field(
        default="window", description="The best window when known, or the text from its start."
    )
    max_passage_share: float | None = Field(
        default=0.25, description="The most of the budget one passage may take (None: no limit)."
    )
    dedup_threshold: float | None = Field(
        default=0.6,
        description="Word-shingle Jaccard similarity at which a passage is a duplicate.",
    )
    min_score: float | None = Field(default=None, description="Drop sources scoring below this.")
    max_score_gap: float | None = Field(
        default=None, description="Drop sources scoring more than this below the best one."
    )
    order: Literal["score", "lost_in_the_middle", "source"] = Field(
        default="score",
        description=(
            "Reading order: best first, best at both ends (as LongContextReorder), or input."
        ),
    )
    template: str = Field(
        default=DEFAULT_TEMPLATE,
        description="How each passage is rendered: fields {n}, {id}, {text}, {score}.",
    )
    separator: str = Field(
        default=DEFAULT_SEPARATOR,
        description="Between passages (the hosts' synthesizers join texts with '\\n\\n').",
    )

    _packer: ContextPacker = PrivateAttr()

    def model_post_init(self, context: Any, /) -> None:
        """Build the packer from the validated fields."""
        super().model_post_init(context)
        self._packer = ContextPacker(
            self.budget_tokens,
            tokenizer=self.tokenizer,
            passage=self.passage,
            max_passage_share=self.max_passage_share,
            dedup_threshold=self.dedup_threshold,
            min_score=self.min_score,
            max_score_gap=self.max_score_gap,
            order=self.order,
            template=self.template,
            separator=self.separator,
        )

    @property
    def packer(self) -> ContextPacker:
        """The framework-free packer doing the work."""
        return self._packer
