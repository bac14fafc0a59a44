"""Unix seconds to and from timestamps, independent of pandas' datetime resolution.

pandas 3 keeps parsed timestamps at microsecond resolution (``datetime64[us]``), pandas 2 at
nanoseconds, so ``astype("int64")`` means different units; subtracting the epoch and dividing by a
one-second Timedelta does not.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

EPOCH = pd.Timestamp(0, tz="UTC")
SECOND = pd.Timedelta(seconds=1)


def to_seconds(ts) -> float:
    """Unix seconds (float) from a Timestamp, datetime, ISO string or number (already seconds)."""
    if isinstance(ts, (int, float, np.integer, np.floating)):
        return float(ts)
    t = pd.Timestamp(ts)
    if t.tzinfo is None:
        t = t.tz_localize("UTC")
    return (t - EPOCH) / SECOND


def series_to_seconds(values: pd.Series) -> np.ndarray:
    """(n,) float64 unix seconds from timestamps or ISO 8601 text (naive ones read as UTC; mixed
    precisions in one column are fine) or numbers (already seconds)."""
    if pd.api.types.is_numeric_dtype(values):
        return values.to_numpy(np.float64)
    ts = pd.to_datetime(values, utc=True, format="ISO8601")
    return ((ts - EPOCH) / SECOND).to_numpy(np.float64)


def seconds_to_timestamps(seconds: np.ndarray) -> pd.DatetimeIndex:
    """Unix seconds (NaN = never) -> UTC timestamps at microsecond resolution (NaT for NaN)."""
    s = np.asarray(seconds, dtype=np.float64)
    us = np.where(np.isnan(s), np.iinfo(np.int64).min, np.round(np.nan_to_num(s) * 1e6)).astype(np.int64)
    return pd.DatetimeIndex(us.view("datetime64[us]")).tz_localize("UTC")  # int64 min is NaT
