"""Shared fixtures: cheap parameter initialisation for tests that build the large zoo models."""

from tests.zoo_builds import quick_params, zero_params  # noqa: F401 - fixtures pytest finds here
