"""The Ray instance the distributed tests share: 2 CPUs, started once per session.

Tests that need Ray skip with the reason when it is not installed (``pip install 'graphflow[ray]'``),
except under CI=true, where CI installs the extra and a missing Ray is a failure.
"""

from __future__ import annotations

import os

import pytest

from graphflow.distributed.cluster import INSTALL_HINT, ray_available


def require_ray_for_tests():
    if not ray_available():
        reason = f"Ray is not installed ({INSTALL_HINT})"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    import ray

    return ray


@pytest.fixture(scope="session")
def ray_instance():
    """A local Ray instance of 2 CPUs for the session (the machine has 2 cores, shared with other work)."""
    ray = require_ray_for_tests()
    started = not ray.is_initialized()
    if started:
        ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
    yield ray
    if started:
        ray.shutdown()
