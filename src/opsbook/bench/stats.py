"""Samples and their summary (median, min, max)."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Measurement:
    """One benchmark: every sample in seconds (warm-up excluded) and notes about the runs."""

    name: str
    description: str
    samples: list[float] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "unit": "s",
            "samples": [round(s, 3) for s in self.samples],
            "median": round(self.median, 3),
            "min": round(min(self.samples), 3),
            "max": round(max(self.samples), 3),
            **({"notes": self.notes} if self.notes else {}),
        }


@dataclass(frozen=True)
class Target:
    """A limit the benchmark checks: `value` must be below `limit`."""

    name: str
    value: float
    limit: float

    @property
    def met(self) -> bool:
        return self.value < self.limit

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": round(self.value, 3),
            "limit": self.limit,
            "met": self.met,
        }


def ratio(numerator: Measurement, denominator: Measurement) -> float:
    """Ratio of medians of two measurements taken alternately in the same run."""
    return numerator.median / denominator.median
