"""`loxo serve --trash-days`: validated like every option, fractions allowed."""

from __future__ import annotations

import pytest

from gateway import config


def build(**options: object) -> config.ServeConfig:
    return config.build(
        "127.0.0.1:0", "/tmp/loxo-trash-options", None, None, "us-east-1", **options
    )  # type: ignore[arg-type]


def test_trash_days_default_is_a_week() -> None:
    assert build().trash_days == 7.0


@pytest.mark.parametrize("days", [0.0, 0.5, 30.0])
def test_trash_days_takes_zero_and_fractions(days: float) -> None:
    assert build(trash_days=days).trash_days == days


@pytest.mark.parametrize("days", [-1.0, float("nan"), float("inf")])
def test_bad_trash_days_say_which_option(days: float) -> None:
    with pytest.raises(config.ConfigError, match="--trash-days"):
        build(trash_days=days)
