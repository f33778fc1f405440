"""Notebook settings that follow the run profile, papermill-style.

A notebook's ``parameters`` cell holds literal values only, so ``papermill -p profile test`` (or
``-p bench_runs 5``) overrides them. A setting left at ``None`` there follows the profile, resolved
in the next cell::

    bench_runs = by_profile(bench_runs, profile, test=15, full=60)

The ``"test"`` profile means tiny models and few iterations (the test suite runs it); ``"full"``
is what a learner runs.
"""

from __future__ import annotations

from typing import Any, TypeVar

PROFILES = ("full", "test")

T = TypeVar("T")


class ProfileError(ValueError):
    """An unknown profile name."""


def check_profile(profile: str) -> str:
    """Return ``profile`` if it is a known profile, else raise :class:`ProfileError`."""
    if profile not in PROFILES:
        raise ProfileError(f"profile must be one of {PROFILES}, got {profile!r}")
    return profile


def by_profile(value: T | None, profile: str, *, test: Any, full: Any) -> T | Any:
    """``value`` when it was set explicitly (not ``None``), otherwise the profile's default."""
    check_profile(profile)
    if value is not None:
        return value
    return test if profile == "test" else full
