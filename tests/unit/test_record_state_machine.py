"""SPEC §3.2: only the drawn transitions exist; everything else is invalid_transition."""

from __future__ import annotations

import itertools

import pytest

from reward_service.records.state import (
    TRANSITIONS,
    Action,
    InvalidTransition,
    RecordStatus,
    next_status,
)

S = RecordStatus
EXPECTED = {
    (Action.submit, S.pending): S.issuing,
    (Action.release_lock, S.locked): S.pending,
    (Action.break_lock, S.locked): S.cancelled,
    (Action.fulfil, S.issuing): S.issued,
    (Action.fail, S.issuing): S.failed,
    (Action.resubmit, S.failed): S.issuing,
    (Action.cancel, S.pending): S.cancelled,
    (Action.cancel, S.locked): S.cancelled,
    (Action.cancel, S.failed): S.cancelled,
}


def test_the_table_is_exactly_the_spec_diagram() -> None:
    assert TRANSITIONS == EXPECTED


@pytest.mark.parametrize(("action", "status"), list(itertools.product(Action, RecordStatus)))
def test_every_action_from_every_status(action: Action, status: RecordStatus) -> None:
    if (action, status) in EXPECTED:
        assert next_status(action, status) is EXPECTED[(action, status)]
    else:
        with pytest.raises(InvalidTransition) as refused:
            next_status(action, status)
        assert refused.value.code == "invalid_transition"
        assert refused.value.status == 409


@pytest.mark.parametrize("final", [S.issued, S.cancelled])
def test_issued_and_cancelled_are_final(final: RecordStatus) -> None:
    assert not [a for (a, s) in TRANSITIONS if s is final]
