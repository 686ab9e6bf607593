"""A dry-run adds up the wall time of each of its phases, a failed block's too."""

from __future__ import annotations

import pytest

from activity_service.evaluation.dry_run_decisions import DryRun, timed


def test_the_blocks_of_a_phase_add_up() -> None:
    report = DryRun()
    with timed(report, "reading"):
        pass
    first = report.phases["reading"]
    with pytest.raises(RuntimeError), timed(report, "reading"):
        raise RuntimeError("the read failed")
    assert report.phases["reading"] > first > 0
    assert set(report.phases) == {"reading"}
