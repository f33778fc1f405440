"""Profile-dependent notebook settings."""

from __future__ import annotations

import pytest

from helpers.course.settings import ProfileError, by_profile


def test_none_follows_the_profile() -> None:
    assert by_profile(None, "test", test=15, full=60) == 15
    assert by_profile(None, "full", test=15, full=60) == 60


def test_an_explicit_value_wins_even_if_falsy() -> None:
    assert by_profile(0, "full", test=15, full=60) == 0
    assert by_profile(False, "test", test=True, full=True) is False


def test_unknown_profile_is_a_clear_error() -> None:
    with pytest.raises(ProfileError, match="profile must be one of"):
        by_profile(None, "fast", test=1, full=2)
