"""The tensors of a v2 JSON request, read straight into NumPy arrays: memory bounded before parsing.

A KServe v2 request carries each tensor as a JSON array of numbers (``"data": [0.1, 0.2, ...]``).
``json.loads`` turns every number into a Python float — 24 bytes, plus 8 for its list slot — so a
16 MB body of short numbers becomes hundreds of megabytes of objects before anything has checked
how many numbers the request *declared*, and glibc keeps that memory after the request is gone.
This module reads such a body in two steps instead:

1. :func:`lift_data` finds every ``"data": [...]`` array of numbers or booleans in the raw bytes
   (byte searches in C, no Python loop over the numbers) and replaces it with a short placeholder.
   What is left — names, shapes, datatypes, parameters — is small: :func:`restore` parses it
   strictly (:func:`helpers.serving.limits.loads_json`) after checking its size, so the declared
   shapes can be checked against the element limit before a single number is read.
2. :func:`read_array` then reads one array's numbers in chunks of a quarter megabyte, each parsed by
   NumPy (``np.fromstring``) straight into a preallocated array of the tensor's dtype. The nesting
   (flat, or nested exactly to the shape) is checked from the brackets and commas alone.

Peak memory per request is the body plus the tensor itself (4 bytes per FP32 value, for at least
2 bytes of JSON each) plus one chunk. Numbers are read as C's ``strtod`` reads them, so a few forms
strict JSON forbids (``+1``, ``.5``, ``01``) are accepted; ``NaN``, ``Infinity``, numbers beyond
float range, integers of more than :data:`~helpers.serving.limits.MAX_INT_DIGITS` digits,
non-integers for integer datatypes and anything that is not a number are refused with a one-line
:class:`~helpers.serving.limits.RequestProblem` (400) naming the value.
"""

from __future__ import annotations

import math
import re
import secrets
from collections.abc import Sequence
from typing import Any

import numpy as np

from helpers.serving.limits import MAX_INT_DIGITS, RequestProblem, loads_json, shorten

__all__ = ["MAX_SKELETON_BYTES", "Lifted", "lift_data", "read_array", "restore"]

#: Largest JSON a request may hold outside its tensors' ``data`` arrays (names, shapes, parameters).
MAX_SKELETON_BYTES = 1 << 20
#: Largest array outside an input's ``data`` that is still parsed (the normal JSON way).
_MAX_STRAY_ARRAY_BYTES = 64 << 10
_CHUNK_BYTES = 256 << 10
_DATA_KEY = re.compile(rb'"data"\s*:\s*\[')
_OBJECT_OR_STRING = re.compile(rb'[{}"]')
_BRACKETS_TO_SPACES = bytes.maketrans(b"[]", b"  ")
_NOT_STRUCTURE = bytes(set(range(256)) - set(b"[],"))
_WHITESPACE = b" \t\r\n"
_ALLOWED = {  # characters a chunk may hold (after brackets became spaces), per dtype kind
    "f": b"0123456789+-.eE," + _WHITESPACE,
    "i": b"0123456789+-," + _WHITESPACE,
    "u": b"0123456789+-," + _WHITESPACE,
    "b": b"truefals," + _WHITESPACE,
}
_EXPECTED = {"b": "true/false", "i": "integers", "u": "integers", "f": "numbers"}
_TOKEN = re.compile(rb"[^,\s]+")
_NUMBER = re.compile(rb"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_INTEGER = re.compile(rb"[+-]?[0-9]+")
_NUMBER_LIKE = re.compile(rb"[+-]?[0-9.eE+-]+")


class Lifted:
    """A request body with its ``data`` arrays taken out: :attr:`skeleton` plus their byte spans."""

    def __init__(self, body: bytes, skeleton: bytes, spans: dict[str, tuple[int, int]]) -> None:
        self.body = body
        self.skeleton = skeleton
        self.spans = spans

    def is_placeholder(self, value: Any) -> bool:
        """Whether ``value`` (from the parsed skeleton) stands for a lifted array."""
        return isinstance(value, str) and value in self.spans


def lift_data(body: bytes) -> Lifted:
    """Replace each ``"data": [...]`` array of the JSON ``body`` by a placeholder string.

    An array is lifted only if it holds no object or string (numbers, booleans, ``null`` and
    brackets) and its brackets balance; anything else stays in place for the JSON parser to judge.
    The placeholders carry a random token, so a client cannot forge one.
    """
    token = secrets.token_hex(8)
    pieces: list[bytes] = []
    spans: dict[str, tuple[int, int]] = {}
    position = 0
    for match in _DATA_KEY.finditer(body):
        start = match.end() - 1  # the "["
        if start < position:
            continue
        stop = _OBJECT_OR_STRING.search(body, start)
        end = body.rfind(b"]", start, stop.start() if stop else len(body)) + 1
        if end <= start or body.count(b"[", start, end) != body.count(b"]", start, end):
            continue
        key = f"\u0000{token}:{len(spans)}"
        pieces += [body[position:start], b'"\\u0000' + key[1:].encode() + b'"']
        spans[key] = (start, end)
        position = end
    if not spans:
        return Lifted(body, body, spans)
    pieces.append(body[position:])
    return Lifted(body, b"".join(pieces), spans)


def restore(lifted: Lifted) -> Any:
    """Parse the skeleton strictly; placeholders outside an input's ``data`` become arrays again.

    Raises :class:`RequestProblem` (413) when the skeleton is over :data:`MAX_SKELETON_BYTES`, and
    (400) for invalid JSON or a large array where no tensor data belongs.
    """
    if len(lifted.skeleton) > MAX_SKELETON_BYTES:
        raise RequestProblem(413, f"the request's JSON outside its tensors' data arrays is "
                                  f"{len(lifted.skeleton):,} bytes (at most {MAX_SKELETON_BYTES:,}); "
                                  'write each tensor\'s numbers as "data": [...]')
    payload = loads_json(lifted.skeleton)
    inputs = payload.get("inputs") if isinstance(payload, dict) else None
    data_values = {id(item) for item in inputs if isinstance(item, dict)} if isinstance(inputs, list) else set()

    def walk(node: Any, owner_is_input: bool = False) -> Any:
        if isinstance(node, dict):
            return {key: (value if owner_is_input and key == "data" and lifted.is_placeholder(value)
                          else walk(value, id(value) in data_values))
                    for key, value in node.items()}
        if isinstance(node, list):
            return [walk(value, id(value) in data_values) for value in node]
        if lifted.is_placeholder(node):  # a "data" key somewhere else, e.g. in parameters
            start, end = lifted.spans[node]
            if end - start > _MAX_STRAY_ARRAY_BYTES:
                raise RequestProblem(400, f"a JSON array of {end - start:,} bytes outside an input's "
                                          "data; tensor numbers belong in inputs[].data")
            return loads_json(lifted.body[start:end])
        return node

    return walk(payload)


def _skeleton(shape: Sequence[int]) -> bytes:
    """The brackets and commas of a JSON array nested exactly to ``shape``: ``[[,,],[,,]]``."""
    inner = b"[" + b"," * (shape[-1] - 1) + b"]"
    for size in reversed(shape[:-1]):
        inner = b"[" + b",".join([inner] * size) + b"]"
    return inner


def _nesting_problem(structure: bytes, shape: Sequence[int], where: str) -> RequestProblem:
    """Why the brackets and commas of nested data do not fit ``shape`` (the error path only)."""
    depth = len(structure) - len(structure.lstrip(b"["))
    if depth != len(shape):
        return RequestProblem(400, f"{where}: data is nested {depth} levels deep but shape {list(shape)} "
                                   f"has rank {len(shape)}")
    codes = np.frombuffer(structure, dtype=np.uint8)
    level = np.cumsum((codes == ord("[")).astype(np.int32) - (codes == ord("]")), dtype=np.int32)
    opened = np.bincount(level[codes == ord("[")], minlength=depth + 1)
    commas = np.bincount(level[codes == ord(",")], minlength=depth + 1)
    found = [int(commas[j] // max(opened[j], 1)) + 1 for j in range(1, depth + 1)]
    if all(size > 0 for size in found) and _skeleton(found) == structure:
        return RequestProblem(400, f"{where}: nested data has shape {found} but shape says {list(shape)}")
    return RequestProblem(400, f"{where}: data must be a flat or nested list of numbers matching "
                               f"shape {list(shape)}")


def _check_structure(body: bytes, start: int, end: int, shape: Sequence[int], where: str) -> None:
    """Nested data: its brackets and commas must be exactly those of ``shape``."""
    structure = body[start:end].translate(None, _NOT_STRUCTURE)
    if structure != _skeleton(shape):
        raise _nesting_problem(structure, shape, where)


def _bad_value(chunk: bytes, kind: str, datatype: str, where: str) -> RequestProblem:
    """The first value of ``chunk`` that is not what ``kind`` needs, as a one-line 400."""
    for match in _TOKEN.finditer(chunk):
        token = match.group()
        if kind == "b" and token in (b"true", b"false"):
            continue
        if kind != "b" and (_NUMBER if kind == "f" else _INTEGER).fullmatch(token):
            continue
        text = shorten(token.decode("utf-8", "replace"))[1:-1]
        if token.lstrip(b"+-") in (b"NaN", b"Infinity", b"nan", b"inf"):
            return RequestProblem(400, f"invalid JSON: {text} is not valid JSON (JSON numbers must be finite)")
        found = {b"true": "booleans", b"false": "booleans", b"null": "null"}.get(token)
        if found is None and _NUMBER.fullmatch(token):
            found = "non-integer numbers" if kind in "iu" else "numbers"
        return RequestProblem(400, f"{where}: datatype {datatype} needs {_EXPECTED[kind]} in data, got "
                                   f"{found or repr(text)}")
    return RequestProblem(400, f"{where}: data is not a comma-separated list of {_EXPECTED[kind]} (a "
                               "value missing, a trailing comma or a comma missing)")


def _not_finite(chunk: bytes, values: np.ndarray, where: str) -> RequestProblem:
    index = int(np.flatnonzero(~np.isfinite(values))[0])
    token = chunk.split(b",")[index].strip().decode("utf-8", "replace")
    digits = len(token.lstrip("+-"))
    if token.lstrip("+-").isdigit() and digits > MAX_INT_DIGITS:
        return RequestProblem(400, f"invalid JSON: an integer of {digits} digits is too large (at most "
                                   f"{MAX_INT_DIGITS})")
    return RequestProblem(400, f"invalid JSON: number {shorten(token)[1:-1]} is out of range (JSON "
                               "numbers must be finite)")


def _parse_chunk(chunk: bytes, dtype: np.dtype, datatype: str, where: str) -> np.ndarray:
    kind = dtype.kind
    if chunk.translate(None, _ALLOWED[kind]):
        raise _bad_value(chunk, kind, datatype, where)
    # NumPy reads an empty value between commas as -1: refuse empty values first.
    compact = chunk.translate(None, _WHITESPACE)
    if not compact or compact.startswith(b",") or compact.endswith(b",") or b",," in compact:
        raise _bad_value(chunk, kind, datatype, where)
    text = chunk
    if kind == "b":
        text = chunk.replace(b"true", b"1").replace(b"false", b"0")
        parse_as: Any = np.int8
    elif kind == "f":
        parse_as = np.float64
    else:
        parse_as = np.uint64 if kind == "u" and b"-" not in chunk else np.int64
    try:
        values = np.fromstring(text, dtype=parse_as, sep=",")
    except ValueError:
        raise _bad_value(chunk, kind, datatype, where) from None
    if values.size != compact.count(b",") + 1:
        raise _bad_value(chunk, kind, datatype, where)
    if kind == "b":
        if values.size and (values.min() < 0 or values.max() > 1):
            raise _bad_value(chunk, kind, datatype, where)
        return values.astype(bool)
    if kind == "f":
        if not np.isfinite(values).all():
            raise _not_finite(chunk, values, where)
        return values
    info, parsed = np.iinfo(dtype), np.iinfo(parse_as)
    if values.size and (values.min() == parsed.min or values.max() == parsed.max):  # saturated?
        for match in re.finditer(rb"[+-]?[0-9]{19,}", chunk):
            if len(match.group().lstrip(b"+-")) > MAX_INT_DIGITS:
                raise RequestProblem(400, f"invalid JSON: an integer of {len(match.group().lstrip(b'+-'))} "
                                          f"digits is too large (at most {MAX_INT_DIGITS})")
            if not parsed.min <= int(match.group()) <= parsed.max:
                raise RequestProblem(400, f"{where}: values out of range for {datatype}")
    if values.size and (int(values.min()) < info.min or int(values.max()) > info.max):
        raise RequestProblem(400, f"{where}: values out of range for {datatype}")
    return values


def read_array(
    body: bytes, span: tuple[int, int], shape: Sequence[int], dtype: np.dtype, *, datatype: str,
    where: str,
) -> np.ndarray:
    """The numbers of ``body[span]`` (a JSON array, flat or nested to ``shape``) as ``dtype``.

    Nested data is checked first (its brackets and commas only); then chunks of a quarter megabyte,
    cut at commas, are parsed straight into the preallocated result — never more than the shape
    holds. Raises :class:`RequestProblem` (400) saying what is wrong.
    """
    start, end = span
    expected = math.prod(shape)
    if body.count(b"[", start, end) > 1:
        _check_structure(body, start, end, shape, where)
    if end - start < 64 and not body[start + 1:end - 1].translate(None, b"[]").strip(_WHITESPACE):
        raise RequestProblem(400, f"{where}: shape {list(shape)} needs {expected} values, data has 0")
    out = np.empty(expected, dtype=dtype)
    filled, position = 0, start
    while position < end:
        cut = end
        if end - position > _CHUNK_BYTES:
            cut = body.rfind(b",", position, position + _CHUNK_BYTES)
            if cut <= position:  # one value longer than a chunk: up to the next comma
                cut = body.find(b",", position + _CHUNK_BYTES, end)
                cut = end if cut < 0 else cut
        chunk = body[position:cut].translate(_BRACKETS_TO_SPACES)
        values = _parse_chunk(chunk, dtype, datatype, where)
        if filled + values.size > out.size:
            raise RequestProblem(400, f"{where}: shape {list(shape)} needs {expected} values, data has "
                                      f"{body.count(b',', start, end) + 1}")
        with np.errstate(over="ignore"):
            out[filled:filled + values.size] = values
        filled += values.size
        position = cut + 1
    if filled != out.size:
        raise RequestProblem(400, f"{where}: shape {list(shape)} needs {expected} values, data has {filled}")
    return out.reshape(shape)
