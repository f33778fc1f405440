"""helpers.serving.v2_json: a v2 request's tensors read straight into typed arrays, strictly."""

from __future__ import annotations

import json

import numpy as np
import pytest

from helpers.serving import v2_json
from helpers.serving.limits import RequestProblem


def _read(data: str, shape: list[int], dtype: str = "float32", datatype: str = "FP32",
          extra: str = "") -> np.ndarray:
    body = ('{"inputs": [{"name": "x", "shape": ' + json.dumps(shape) + f', "datatype": "{datatype}", '
            f'"data": {data}{extra}' + "}]}").encode()
    lifted = v2_json.lift_data(body)
    payload = v2_json.restore(lifted)
    placeholder = payload["inputs"][0]["data"]
    assert lifted.is_placeholder(placeholder), payload
    return v2_json.read_array(lifted.body, lifted.spans[placeholder], shape, np.dtype(dtype),
                              datatype=datatype, where="input 'x'")


def _refused(data: str, shape: list[int], **kwargs) -> str:
    with pytest.raises(RequestProblem) as info:
        _read(data, shape, **kwargs)
    assert info.value.status == 400
    return info.value.message


def test_flat_and_nested_data_give_the_same_typed_array() -> None:
    want = np.arange(6, dtype=np.float32).reshape(2, 3) / 4
    assert _read(json.dumps(want.ravel().tolist()), [2, 3]).tolist() == want.tolist()
    nested = _read(" [ [0, 0.25 ,0.5],\n[0.75, 1.0, 1.25] ] ", [2, 3])
    assert nested.dtype == np.float32 and nested.tolist() == want.tolist()
    assert _read("[1, -2, 3]", [3], "int8", "INT8").dtype == np.int8
    assert _read("[true, false]", [2], "bool", "BOOL").tolist() == [True, False]
    assert _read("[18446744073709551615]", [1], "uint64", "UINT64")[0] == 2**64 - 1


def test_many_chunks_are_read_exactly() -> None:
    x = np.random.default_rng(0).random(200_000).astype(np.float32)  # ~4 MB of JSON: 16+ chunks
    np.testing.assert_array_equal(_read(json.dumps(x.tolist()), [200_000]), x)


@pytest.mark.parametrize(("data", "fragment"), [
    ("[1, 2, 3, 4, 5, ]", "comma-separated"),  # NumPy alone reads the empty value as -1
    ("[1, 2, , 4, 5, 6]", "comma-separated"),
    ("[1, 2, 3, 4 5, 6]", "comma-separated"),
    ("[1, 2, 3, 4, 5]", "needs 6 values, data has 5"),
    ("[1, 2, 3, 4, 5, 6, 7]", "needs 6 values, data has 7"),
    ("[]", "data has 0"),
    ("[NaN, 2, 3, 4, 5, 6]", "NaN is not valid JSON"),
    ("[1, 2, 3, 4, 5, -Infinity]", "-Infinity is not valid JSON"),
    ("[1e400, 2, 3, 4, 5, 6]", "1e400 is out of range"),
    ("[1, 2, 3, 4, 5, " + "9" * 400 + "]", "400 digits is too large"),
    ("[1, 2, 3, 4, 5, true]", "needs numbers in data, got booleans"),
    ("[1, 2, 3, 4, 5, null]", "got null"),
    ("[1, 2, 3, 4, 5, 0x1]", "got '0x1'"),
    ("[[1, 2], [3, 4], [5, 6]]", "nested data has shape [3, 2] but shape says [2, 3]"),
    ("[[1, 2, 3], [4, 5]]", "flat or nested list"),
    ("[[[1, 2, 3], [4, 5, 6]]]", "nested 3 levels deep but shape [2, 3] has rank 2"),
])
def test_malformed_data_is_a_one_line_400(data: str, fragment: str) -> None:
    message = _refused(data, [2, 3])
    assert fragment in message and "\n" not in message, message


def test_integer_and_boolean_datatypes_are_strict() -> None:
    assert "needs integers in data, got non-integer numbers" in _refused("[1.5]", [1], dtype="int32",
                                                                          datatype="INT32")
    assert "out of range for INT8" in _refused("[300]", [1], dtype="int8", datatype="INT8")
    assert "out of range for UINT8" in _refused("[-1]", [1], dtype="uint8", datatype="UINT8")
    assert "out of range for INT64" in _refused(f"[{2**63}]", [1], dtype="int64", datatype="INT64")
    assert "got numbers" in _refused("[1, 0]", [2], dtype="bool", datatype="BOOL")
    assert "got 'tru'" in _refused("[true, tru]", [2], dtype="bool", datatype="BOOL")


def test_only_input_data_is_lifted_and_placeholders_cannot_be_forged() -> None:
    body = (b'{"id": "\\"data\\": [9]", "inputs": [{"name": "x", "shape": [2], "datatype": "FP32", '
            b'"data": [1, 2], "parameters": {"data": [3, 4]}}], "outputs": [{"name": "y"}]}')
    lifted = v2_json.lift_data(body)
    payload = v2_json.restore(lifted)
    assert payload["id"] == '"data": [9]'  # a string that looks like data stays a string
    assert payload["inputs"][0]["parameters"] == {"data": [3, 4]}  # parsed the normal way
    assert lifted.is_placeholder(payload["inputs"][0]["data"])
    forged = v2_json.lift_data(b'{"inputs": [{"data": "\\u0000" }]}')
    assert not forged.spans and not forged.is_placeholder("\u0000")


def test_a_large_array_where_no_tensor_belongs_is_refused_unparsed() -> None:
    big = "[" + ", ".join(["1"] * 40_000) + "]"
    body = ('{"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1], '
            '"parameters": {"data": ' + big + "}}]}").encode()
    with pytest.raises(RequestProblem, match="outside an input's data"):
        v2_json.restore(v2_json.lift_data(body))
    unlifted = ('{"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "d\\u0061ta": '
                + "[" + ", ".join(["1"] * 400_000) + "]}]}").encode()
    with pytest.raises(RequestProblem) as info:
        v2_json.restore(v2_json.lift_data(unlifted))
    assert info.value.status == 413 and "outside its tensors' data arrays" in info.value.message
