"""The `backend` every contract suite runs on: each implementation in
harness.IMPLEMENTATIONS in turn (module-scoped: one database per module)."""

from __future__ import annotations

import pytest

from tests.versioning.db.harness import IMPLEMENTATIONS, Backend, implementation_id


@pytest.fixture(scope="module", params=IMPLEMENTATIONS, ids=implementation_id)
def backend(request: pytest.FixtureRequest) -> Backend:
    return request.param(request)  # type: ignore[no-any-return]
