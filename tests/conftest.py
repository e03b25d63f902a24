"""Shared fixtures.

Every memory controller any test builds gets the independent protocol checker attached online
(raising at the first violation, checked again at teardown), so DDR4 legality is asserted by the
whole suite, not by one file.  A test that must produce illegal streams opts out with
``@pytest.mark.no_checker``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gradpimsim.checker import ProtocolChecker
from gradpimsim.controller import controller
from gradpimsim.system.parallel import ONLINE_CHECK_ENV

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "no_checker: do not attach the online protocol checker")


@pytest.fixture(autouse=True)
def online_checker(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch,
                   ) -> Iterator[list[ProtocolChecker]]:
    """Attach a raising ProtocolChecker to every ChannelController created during the test,
    in worker processes too (``compare(jobs=2)``: they see the environment variable)."""
    checkers: list[ProtocolChecker] = []
    if request.node.get_closest_marker("no_checker"):
        monkeypatch.delenv(ONLINE_CHECK_ENV, raising=False)
        yield checkers
        return
    monkeypatch.setenv(ONLINE_CHECK_ENV, "1")

    def factory(cfg, channel, pim):  # type: ignore[no-untyped-def]
        checker = ProtocolChecker(cfg, pim, raise_on_violation=True)
        checkers.append(checker)
        return checker.observe

    controller.OBSERVER_FACTORIES.append(factory)
    try:
        yield checkers
    finally:
        controller.OBSERVER_FACTORIES.remove(factory)
    for checker in checkers:
        report = checker.finish()
        assert report.ok, f"protocol violations: {report.violations[:3]}"


@pytest.fixture
def shared_reference() -> Path:
    path = SHARED / "reference"
    if not path.is_dir():
        pytest.skip("../shared/reference is not available")
    return path
