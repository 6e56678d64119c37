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
    # machine-wide busy CPU seconds of each sample (controller and lab nodes together)
    cpu_samples: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Measurement:
        return cls(
            data["name"],
            data["description"],
            list(data["samples"]),
            dict(data.get("notes", {})),
            list(data.get("cpu_samples", [])),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "unit": "s",
            "samples": [round(s, 3) for s in self.samples],
            "median": round(self.median, 3),
            "min": round(min(self.samples), 3),
            "max": round(max(self.samples), 3),
            **(
                {
                    "cpu_samples": [round(c, 2) for c in self.cpu_samples],
                    "cpu_median": round(statistics.median(self.cpu_samples), 2),
                }
                if self.cpu_samples
                else {}
            ),
            **({"notes": self.notes} if self.notes else {}),
        }


@dataclass(frozen=True)
class Target:
    """A limit the benchmark checks: `value` must be below `limit`."""

    name: str
    value: float
    limit: float
    # what the measurements say about a miss (empty when met or nothing is known)
    why: str = ""

    @property
    def met(self) -> bool:
        return self.value < self.limit

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": round(self.value, 3),
            "limit": self.limit,
            "met": self.met,
            **({"why": self.why} if self.why and not self.met else {}),
        }


def cpu_median(m: Measurement) -> float:
    """Median machine-wide busy CPU seconds of the samples (0 when not measured)."""
    return statistics.median(m.cpu_samples) if m.cpu_samples else 0.0


def ratio(numerator: Measurement, denominator: Measurement) -> float:
    """Ratio of medians of two measurements taken alternately in the same run."""
    return numerator.median / denominator.median
