"""Text helpers of context assembly: token counting, sentence boundaries, near-duplicates.

Nothing heavy is imported here until a tokenizer is loaded, so ``import crossrank`` stays
cheap.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Union

from crossrank.errors import InvalidInputError, ModelNotFoundError

__all__ = [
    "TokenizerLike",
    "exact_key",
    "jaccard",
    "sentence_ends",
    "sentence_starts",
    "shingles",
    "token_counter",
    "word_ends",
]

#: What counts tokens: a Hugging Face tokenizer object, a folder or hub id of one, a
#: ``tokenizers.Tokenizer``, anything with ``encode(text)`` returning tokens (``tiktoken``),
#: or a callable ``text -> int`` (or ``text -> tokens``).
TokenizerLike = Union[str, "os.PathLike[str]", Callable[[str], Any], Any]

_ABBREVIATIONS = frozenset(
    "al approx ca cf dr e.g eg etc fig figs i.e ie mr mrs ms no nos prof sr st vs vol".split()
)
_SENTENCE_END = re.compile(r"[.!?][\"'”’)\]]*(?=\s)|\n")
_WORD = re.compile(r"\w+")


def token_counter(tokenizer: TokenizerLike) -> Callable[[str], int]:
    """A function counting the tokens of a text, without special tokens (``[CLS]``, BOS…)."""
    if isinstance(tokenizer, str | os.PathLike):
        return _hf_counter(_load(os.fspath(tokenizer)))
    if (
        hasattr(tokenizer, "backend_tokenizer")
        or hasattr(tokenizer, "convert_tokens_to_ids")
        or type(tokenizer).__module__.startswith("tokenizers")
    ):
        return _hf_counter(tokenizer)
    encode = getattr(tokenizer, "encode", None)
    if callable(encode):
        return lambda text: _as_count(encode(text))
    if callable(tokenizer):
        return lambda text: _as_count(tokenizer(text))
    msg = (
        "tokenizer must be a Hugging Face tokenizer (object, folder or hub id), an object with "
        f"encode(text), or a callable text -> token count; got {type(tokenizer).__name__}"
    )
    raise InvalidInputError(msg)


def _load(name: str) -> Any:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(name)
    except OSError as exc:
        msg = (
            f"cannot load a tokenizer from {name!r} ({exc}); pass a tokenizer folder, a hub id "
            "reachable from here, a tokenizer object or a callable text -> token count"
        )
        raise ModelNotFoundError(msg) from exc


def _hf_counter(tokenizer: Any) -> Callable[[str], int]:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:  # a fast tokenizer: no length warnings, no Python overhead
        return _plain_counter(backend)
    if type(tokenizer).__module__.startswith("tokenizers"):  # a tokenizers.Tokenizer
        return _plain_counter(tokenizer)
    if hasattr(tokenizer, "convert_tokens_to_ids"):  # a slow transformers tokenizer
        return lambda text: len(tokenizer.encode(text, add_special_tokens=False, verbose=False))
    return lambda text: _as_count(tokenizer.encode(text, add_special_tokens=False))


def _plain_counter(backend: Any) -> Callable[[str], int]:
    """Count with a ``tokenizers.Tokenizer``, on a copy without its padding and truncation
    (a saved tokenizer often pads every text to a fixed length)."""
    from tokenizers import Tokenizer

    plain = Tokenizer.from_str(backend.to_str())
    plain.no_padding()
    plain.no_truncation()
    return lambda text: len(plain.encode(text, add_special_tokens=False).ids)


def _as_count(value: object) -> int:
    if isinstance(value, bool | str | bytes):
        msg = f"the token counter returned {value!r}; return an int or a list of tokens"
        raise InvalidInputError(msg)
    if isinstance(value, int):
        if value < 0:
            msg = f"the token counter returned {value}; a count cannot be negative"
            raise InvalidInputError(msg)
        return value
    if isinstance(value, Mapping) and "input_ids" in value:
        return len(value["input_ids"])
    ids = getattr(value, "ids", None)  # tokenizers.Encoding
    if isinstance(ids, Sequence):
        return len(ids)
    if isinstance(value, Sequence):
        return len(value)
    msg = f"the token counter returned {type(value).__name__}; return an int or a list of tokens"
    raise InvalidInputError(msg)


def sentence_ends(text: str, start: int = 0, end: int | None = None) -> list[int]:
    """Offsets in ``(start, end]`` where a sentence of ``text`` ends (after its final
    punctuation and closing quotes; a line break ends one too), ``end`` included."""
    stop = len(text) if end is None else end
    out: list[int] = []
    for match in _SENTENCE_END.finditer(text, start, stop):
        cut = match.end() if match.group() != "\n" else match.start()
        if match.group()[0] == "." and _is_abbreviation(text, match.start()):
            continue
        if start < cut < stop and (not out or out[-1] != cut):
            out.append(cut)
    out.append(stop)
    return out


def sentence_starts(text: str) -> list[int]:
    """Offsets where a sentence of ``text`` starts (0 first), whitespace skipped."""
    starts = [_skip_space(text, 0)]
    for cut in sentence_ends(text)[:-1]:
        begin = _skip_space(text, cut)
        if begin < len(text) and begin != starts[-1]:
            starts.append(begin)
    return starts


def word_ends(text: str, start: int, end: int) -> list[int]:
    """Offsets in ``(start, end]`` where a word of ``text[start:end]`` ends, ``end`` included."""
    out = [m.end() for m in re.finditer(r"\S+", text[start:end])]
    return [start + e for e in out if start + e < end] + [end]


def _skip_space(text: str, i: int) -> int:
    while i < len(text) and text[i].isspace():
        i += 1
    return i


def _is_abbreviation(text: str, dot: int) -> bool:
    """True when the period at ``dot`` closes an abbreviation or an initial, not a sentence."""
    begin = dot
    while begin > 0 and not text[begin - 1].isspace():
        begin -= 1
    word = text[begin:dot].lower().lstrip("([\"'")
    if len(word) == 1 and word.isalpha():
        return True  # an initial: "J. Smith"
    return word in _ABBREVIATIONS


def exact_key(text: str) -> str:
    """``text`` lower-cased with its punctuation and spacing dropped (exact duplicates share
    it)."""
    return " ".join(_WORD.findall(text.lower()))


def shingles(text: str, size: int) -> frozenset[tuple[str, ...]]:
    """The set of ``size``-word shingles of ``text`` (lower-cased words)."""
    words = _WORD.findall(text.lower())
    if len(words) < size:
        return frozenset([tuple(words)]) if words else frozenset()
    return frozenset(tuple(words[i : i + size]) for i in range(len(words) - size + 1))


def jaccard(a: frozenset[Any], b: frozenset[Any]) -> float:
    """Jaccard similarity of two sets (0 when both are empty)."""
    if not a or not b:
        return 0.0
    common = len(a & b)
    return common / (len(a) + len(b) - common)
