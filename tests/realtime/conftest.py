"""Fixtures for the public API's tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from realtime import channels


@pytest.fixture
def kinds() -> Iterator[None]:
    """Kinds registered by a test are gone after it."""
    before = dict(channels._KINDS)
    yield
    channels._KINDS.clear()
    channels._KINDS.update(before)
