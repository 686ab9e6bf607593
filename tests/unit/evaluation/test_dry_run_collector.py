"""A dry-run pauses the cyclic garbage collector while it decides, and gives it back as it
found it, however dry-runs overlap."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from activity_service.evaluation.dry_run import collector_paused


@pytest.fixture(autouse=True)
def collector_enabled() -> Iterator[None]:
    gc.enable()
    yield
    gc.enable()


def test_overlapping_dry_runs_resume_it_when_the_last_is_done() -> None:
    first, second = collector_paused(), collector_paused()
    first.__enter__()
    assert not gc.isenabled()
    second.__enter__()
    first.__exit__(None, None, None)
    assert not gc.isenabled()  # the second still decides
    second.__exit__(None, None, None)
    assert gc.isenabled()


def test_it_is_resumed_when_a_dry_run_fails() -> None:
    with pytest.raises(RuntimeError), collector_paused():
        raise RuntimeError("decisions failed")
    assert gc.isenabled()


def test_a_collector_paused_by_someone_else_stays_paused() -> None:
    gc.disable()
    with collector_paused():
        assert not gc.isenabled()
    assert not gc.isenabled()
