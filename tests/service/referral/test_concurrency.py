"""Concurrent binds: exactly one wins, and no interleaving closes a cycle."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.payloads import Node
from referral_service.bindings import service
from referral_service.bindings.models import Binding
from referral_service.bindings.schemas import Channel
from tests.service.harness import Platform
from tests.service.referral.steps import chain, invite_code, op_bind, op_change, self_bind


async def test_two_self_binds_of_one_invitee_one_wins(platform: Platform) -> None:
    codes = [await invite_code(platform, "u-a"), await invite_code(platform, "u-c")]
    for round_ in range(5):
        invitee = f"u-new-{round_}"
        responses = await asyncio.gather(*(self_bind(platform, invitee, c) for c in codes))
        assert sorted(r.status_code for r in responses) == [201, 409]
        loser = next(r for r in responses if r.status_code == 409)
        assert loser.json()["code"] == "already_bound"


async def test_two_operator_binds_of_one_node_one_wins(platform: Platform) -> None:
    for node in ("registration", "account_opening", "deposit"):
        responses = await asyncio.gather(
            op_bind(platform, "u-b", "u-a", node), op_bind(platform, "u-b", "u-c", node)
        )
        assert sorted(r.status_code for r in responses) == [201, 409], node


async def test_concurrent_changes_leave_one_consistent_history(platform: Platform) -> None:
    responses = await asyncio.gather(
        *(op_change(platform, "u-b", "deposit", f"u-{i}") for i in range(6))
    )
    assert all(r.status_code == 200 for r in responses)
    body = (await platform.referral.get("/v1/bindings/u-b", headers=platform.operator())).json()
    history = body["history"]
    assert history[0]["action"] == "bound"
    # Each change replaced exactly the inviter before it; the last one is current.
    for before, after in zip(history, history[1:], strict=False):
        assert after["previous_inviter_id"] == before["inviter_id"]
    deposit = next(n for n in body["nodes"] if n["node"] == "deposit")
    assert deposit["binding"]["inviter_id"] == history[-1]["inviter_id"]


async def test_crossing_binds_cannot_both_win(platform: Platform) -> None:
    for round_ in range(5):
        a, b = f"u-a{round_}", f"u-b{round_}"
        responses = await asyncio.gather(op_bind(platform, a, b), op_bind(platform, b, a))
        assert sorted(r.status_code for r in responses) == [201, 409]
        assert next(r for r in responses if r.status_code == 409).json()["code"] == "binding_cycle"


async def test_two_binds_closing_a_long_cycle_together_cannot_both_win(platform: Platform) -> None:
    # x2 → x1 exists (x2 invited by x1) and x4 → x3. Alone, "x3 invited by x2" and
    # "x1 invited by x4" are fine; together they close x1 → x4 → x3 → x2 → x1.
    for round_ in range(5):
        x1, x2, x3, x4 = (f"r{round_}-x{i}" for i in range(1, 5))
        await chain(platform, [x1, x2])
        await chain(platform, [x3, x4])
        responses = await asyncio.gather(op_bind(platform, x3, x2), op_bind(platform, x1, x4))
        assert sorted(r.status_code for r in responses) == [201, 409]


async def test_concurrent_crossing_changes_at_a_node_cannot_both_win(platform: Platform) -> None:
    for round_ in range(5):
        a, b = f"d-a{round_}", f"d-b{round_}"
        responses = await asyncio.gather(
            op_change(platform, a, "deposit", b), op_change(platform, b, "deposit", a)
        )
        assert sorted(r.status_code for r in responses) == [200, 409]


async def _registration_bind(session: AsyncSession, invitee: str, inviter: str) -> Binding:
    return await service.bind(
        session,
        tenant_id="tenant-a",
        invitee_id=invitee,
        inviter_id=inviter,
        node=Node.registration,
        channel=Channel.invite_code,
        actor="system:registration",
        at=datetime.now(UTC),
        registration_grace=timedelta(hours=24),
    )


async def test_invitees_of_one_inviter_bind_side_by_side(platform: Platform) -> None:
    """A registration bind only reads its inviter's chain, so it takes the chain's locks
    shared: a second invitee of the same inviter binds while the first bind's transaction
    is still open, instead of every invitee of a popular inviter queueing behind the others."""
    await chain(platform, ["s-top", "s-inviter"])
    db = platform.db("referral")
    async with db.session() as first:
        await _registration_bind(first, "s-new-1", "s-inviter")
        async with db.session() as second:
            # ``first`` commits only after this returns: it must not wait for it.
            await asyncio.wait_for(_registration_bind(second, "s-new-2", "s-inviter"), 10)
    body = (await platform.referral.get("/v1/bindings/s-new-2", headers=platform.operator())).json()
    registration = next(n for n in body["nodes"] if n["node"] == "registration")
    assert registration["binding"]["inviter_id"] == "s-inviter"


async def test_binding_a_chain_top_waits_for_the_binds_reading_the_chain(
    platform: Platform,
) -> None:
    """The one way a chain grows is binding the user at its top: that bind waits for the
    open binds that read the chain, so none of them can miss a cycle it would close."""
    await chain(platform, ["t-top", "t-inviter"])
    db = platform.db("referral")
    async with db.session() as first:
        await _registration_bind(first, "t-new", "t-inviter")  # reads t-inviter → t-top
        async with db.session() as second:
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(_registration_bind(second, "t-top", "t-other"), 1.5)
            await second.rollback()
