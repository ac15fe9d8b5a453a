"""The intake's tests run with each writer: on the event loop, and the writer process that
`leadbridge serve` uses (hits stored by another process before the answer)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from leadbridge.config import Settings
from leadbridge.hub import Hub


@pytest.fixture(params=["event_loop", "process"])
def hub(request: pytest.FixtureRequest, settings: Settings) -> Iterator[Hub]:
    assert settings.tracking.writer == "process"  # the default
    the_hub = Hub(settings, serving=request.param == "process")
    yield the_hub
    the_hub.close()
