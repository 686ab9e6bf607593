"""The reward record state machine of SPEC §3.2, free of I/O so tests can call it directly.

          submit (auto at once, or operator)         fulfilment ok
Pending ──────────────────────────────► Issuing ───────────────► Issued
   │  ▲                                   │
   │  │ lock ends, condition held         │ fulfilment failed
   │  │                                   ▼
   │ Locked ──── lock broken ──┐        Failed ── operator resubmits ──► Issuing
   │                           ▼
   └──── operator cancels ──► Cancelled  (also from Locked and Failed)
"""

from __future__ import annotations

from enum import StrEnum

from service_kit.errors import Conflict


class RecordStatus(StrEnum):
    pending = "pending"
    locked = "locked"
    issuing = "issuing"
    issued = "issued"
    failed = "failed"
    cancelled = "cancelled"


class Action(StrEnum):
    submit = "submit"
    release_lock = "release_lock"
    break_lock = "break_lock"
    fulfil = "fulfil"
    fail = "fail"
    resubmit = "resubmit"
    cancel = "cancel"


S = RecordStatus
TRANSITIONS: dict[tuple[Action, RecordStatus], RecordStatus] = {
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


class InvalidTransition(Conflict):
    code = "invalid_transition"
    title = "Transition not allowed"


def next_status(action: Action, current: RecordStatus) -> RecordStatus:
    """The status ``action`` leads to from ``current``, or InvalidTransition."""
    target = TRANSITIONS.get((action, current))
    if target is None:
        allowed = sorted(a.value for (a, s) in TRANSITIONS if s == current)
        raise InvalidTransition(
            f"Cannot {action.value} a record that is {current.value}; "
            f"allowed from {current.value}: {', '.join(allowed) or 'nothing (final)'}.",
            current_status=current.value,
            action=action.value,
        )
    return target
