"""Field types of the spec models: strict integers, strict booleans, finite floats, encodable text.

A spec field that holds a count holds a JSON integer: ``true`` is not 1 and ``3.0`` is not 3
(numpy integers from Python code are taken as the integers they are). Booleans are ``true`` or
``false``, not ``"true"`` or 1. Floats are finite numbers (integers allowed), never ``inf`` or
``NaN``. Text is valid Unicode (no lone surrogates, which JSON escapes can spell but no file can
hold), so every valid spec can be written back.

>>> import numpy as np
>>> from pydantic import TypeAdapter
>>> TypeAdapter(PositiveInt).validate_python(3)
3
>>> TypeAdapter(PositiveInt).validate_python(np.int64(3))
3
>>> for bad in ("true", "3.0", '"3"', "0"):
...     try:
...         TypeAdapter(PositiveInt).validate_json(bad)
...     except ValueError as err:
...         print(bad, "->", err.errors()[0]["msg"])
true -> Input should be a valid integer
3.0 -> Input should be a valid integer
"3" -> Input should be a valid integer
0 -> Input should be greater than 0
>>> TypeAdapter(PositiveInt).json_schema()
{'exclusiveMinimum': 0, 'type': 'integer'}
>>> TypeAdapter(FiniteFloat).validate_python(2)
2.0
"""

from __future__ import annotations

import numbers
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, Field


def _plain_int(value):
    """numpy integers (``np.int64(3)``) become Python ints; everything else is left to the strict check."""
    if isinstance(value, numbers.Integral) and not isinstance(value, (bool, int)):
        return int(value)
    return value


def _encodable(value: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as err:
        raise ValueError(f"text holds a lone surrogate {value[err.start]!r} at position {err.start}, "
                         "which cannot be written as UTF-8") from None
    return value


# The constraints come before the validator that takes numpy integers, so that they stay part of
# the JSON Schema (``exclusiveMinimum``); a field adding its own bounds would lose that.
StrictInt = Annotated[int, Field(strict=True), BeforeValidator(_plain_int)]
"""An integer, never a bool, float or string."""
PositiveInt = Annotated[int, Field(strict=True, gt=0), BeforeValidator(_plain_int)]
NonNegativeInt = Annotated[int, Field(strict=True, ge=0), BeforeValidator(_plain_int)]
StrictBool = Annotated[bool, Field(strict=True)]
"""``true`` or ``false``, never ``1`` or ``"true"``."""
FiniteFloat = Annotated[float, Field(strict=True, allow_inf_nan=False)]
"""A finite number (integers allowed), never ``inf``, ``NaN``, a bool or a string."""
Text = Annotated[str, AfterValidator(_encodable)]
"""A string that can be written as UTF-8."""
