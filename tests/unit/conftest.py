"""Fixtures shared by the unit tests."""

from __future__ import annotations

import pytest

from gridflow_app.embedded import EmbeddedGridflow


@pytest.fixture
def gridflow():
    """The embedded default on the simulated clock, Lucheng loaded, not started (a test drives
    its runtimes and API itself); closed afterwards, its temporary folder removed."""
    g = EmbeddedGridflow(clock_mode="simulated")
    g.load_jurisdiction()
    yield g
    g.close()
