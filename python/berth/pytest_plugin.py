"""The `berth_server` pytest fixture (registered when the berth package is installed): a berth on
a free port of 127.0.0.1 with a temporary data directory, for the test session.

    def test_my_endpoint(berth_server):
        berth_server.sagemaker.create_model(...)
"""

import pytest

import berth


@pytest.fixture(scope="session")
def berth_server():
    """A running berth (`berth.Server`: `.url`, `.sagemaker`, `.runtime`, `.client(...)`),
    shared by the session's tests and stopped at its end. It is configured as berth is, by
    its environment variables (e.g. `BERTH_FILE_ROOTS` for `file://` model data)."""
    with berth.serve() as server:
        yield server
