"""The routing tests' live-server world (volunteers, sessions, a clean slate) for these tests."""

from tests.routing.conftest import world_factory

__all__ = ["world_factory"]
