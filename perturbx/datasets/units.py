"""Doses and times as CMap files write them, in µM and hours; an unknown unit is an error, never a guess."""

from __future__ import annotations

import re

import numpy as np

from .errors import MetadataError

MISSING = -666  # CMap's missing value, as a number or as text

_DOSE_TO_UM = {"um": 1.0, "µm": 1.0, "μm": 1.0, "micromolar": 1.0, "nm": 1e-3, "nanomolar": 1e-3,
               "mm": 1e3, "millimolar": 1e3, "pm": 1e-6, "m": 1e6, "molar": 1e6}
_TIME_TO_H = {"h": 1.0, "hr": 1.0, "hrs": 1.0, "hour": 1.0, "hours": 1.0, "m": 1 / 60, "min": 1 / 60,
              "mins": 1 / 60, "minute": 1 / 60, "minutes": 1 / 60, "d": 24.0, "day": 24.0, "days": 24.0}
_QUANTITY = re.compile(r"^\s*([-+]?\d*\.?\d+(?:[eE][-+]?\d+)?)\s*([^\d\s].*?)?\s*$")


class UnitError(MetadataError):
    """A dose or time whose unit is unknown or whose text cannot be read; never guessed."""


def _quantity(value, unit, table: dict[str, float], what: str) -> float:
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return float("nan")
    text = str(value).strip()
    if text in ("", str(MISSING), f"{MISSING}.0"):
        return float("nan")
    if unit is None or (isinstance(unit, float) and np.isnan(unit)) or str(unit).strip() == "":
        match = _QUANTITY.match(text)
        if not match:
            raise UnitError(f"cannot read {what} {text!r}")
        number, unit = match.group(1), match.group(2)
        if unit is None:
            raise UnitError(f"{what} {text!r} has no unit")
        if re.search(r"\d", unit):
            raise UnitError(f"{what} {text!r} is not a single {what}")
    else:
        number = text
    key = str(unit).strip().lower().replace("\u00b5", "µ")
    if key not in table:
        shown = text + " " + str(unit) if number == text else text
        raise UnitError(f"unknown {what} unit {str(unit).strip()!r} in {shown!r}")
    try:
        magnitude = float(number)
    except ValueError:
        raise UnitError(f"cannot read {what} {text!r}") from None
    if magnitude == MISSING:
        return float("nan")
    return magnitude * table[key]


def dose_to_um(value, unit=None) -> float:
    """A dose in micromolar, from a number plus unit (``10, "uM"``) or one string (``"500 nM"``, ``"10 µM"``).

    Accepted units: pM, nM, µM/uM/um, mM, M (any case, ``µ`` as U+00B5 or U+03BC). Missing (-666/NaN) gives NaN.

    Raises:
        UnitError: an unknown unit (e.g. ``µg/ml``, which needs a molecular weight) or unreadable text.
    """
    return _quantity(value, unit, _DOSE_TO_UM, "dose")


def time_to_h(value, unit=None) -> float:
    """A time in hours, from a number plus unit (``24, "h"``) or one string (``"24 h"``, ``"30 min"``).

    Raises:
        UnitError: an unknown unit or text that is not one time (e.g. ``"6 h & 4 h"``).
    """
    return _quantity(value, unit, _TIME_TO_H, "time")
