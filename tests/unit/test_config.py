"""Settings from the environment: one clear error naming what is missing or garbled."""

from __future__ import annotations

import pytest

from lib.config import ConfigurationError, env_number, require_env


@pytest.mark.req("FR-018")
def test_require_env_names_every_missing_variable() -> None:
    assert require_env(("A",), {"A": "1", "B": "2"}) == {"A": "1"}
    with pytest.raises(ConfigurationError, match="B, C"):
        require_env(("A", "B", "C"), {"A": "1", "B": ""})


@pytest.mark.req("FR-018")
@pytest.mark.parametrize("raw", ["x", "nan", "inf", "-1", "11"])
def test_env_number_rejects_non_numbers_and_out_of_range(raw: str) -> None:
    with pytest.raises(ConfigurationError):
        env_number("N", raw, 0, 10)
    assert env_number("N", "2.5", 0, 10) == 2.5
