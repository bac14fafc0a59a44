from __future__ import annotations

import pytest

from kt.sim import generate_world, preset


@pytest.fixture(scope="module")
def tiny_world(tmp_path_factory):
    """A tiny generated world, shared by the tests of one module."""
    out = tmp_path_factory.mktemp("world")
    summary = generate_world(preset("tiny"), out)
    return out, summary
