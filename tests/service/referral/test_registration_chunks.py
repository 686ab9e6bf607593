"""Registrations applied a chunk at a time (``registrations.apply_registrations``): every
rule of a single registration bind holds, also between registrations of the same chunk."""

from __future__ import annotations

from datetime import timedelta

from referral_service.bindings.tasks import REGISTRATIONS_PER_TRANSACTION
from service_kit.outbox.bundles import items_of
from tests.service.harness import Platform
from tests.service.referral.steps import (
    deliver,
    invite_code,
    registration,
    registration_bindings,
    rows,
)


async def _completions(platform: Platform) -> dict[str, str]:
    found = await rows(
        platform, "SELECT user_id, event_id FROM node_completions WHERE node = 'registration'"
    )
    return {r.user_id: r.event_id for r in found}


async def test_a_delivery_binds_every_invitee_of_one_inviter_once(platform: Platform) -> None:
    code = await invite_code(platform, "u-a")
    count = REGISTRATIONS_PER_TRANSACTION + 5  # two chunks
    payloads = [registration(platform, f"u-{i}", code, f"evt-{i}") for i in range(count)]
    payloads += [registration(platform, f"u-plain-{i}", None, f"evt-plain-{i}") for i in range(3)]
    payloads.append(registration(platform, "u-lost", "NOSUCHCODE", "evt-lost"))

    worker = await deliver(platform, payloads)

    assert worker.jobs_complete == 1 and worker.jobs_failed == 0
    assert await registration_bindings(platform) == {
        ("tenant-a", f"u-{i}"): "u-a" for i in range(count)
    }
    completions = await _completions(platform)
    assert len(completions) == count + 4
    assert completions["u-0"] == "evt-0" and completions["u-lost"] == "evt-lost"
    history = await rows(platform, "SELECT invitee_id, action, actor FROM binding_history")
    assert sorted(r.invitee_id for r in history) == sorted(f"u-{i}" for i in range(count))
    assert {(r.action, r.actor) for r in history} == {("bound", "system:registration")}
    messages = await rows(
        platform, "SELECT payload FROM outbox_messages WHERE job_name = 'activity.binding_changed'"
    )
    assert len(messages) == 2  # one per chunk, a bundle of its bindings
    changed = [item for m in messages for item in items_of(m.payload)]
    assert sorted(m["invitee_id"] for m in changed) == sorted(f"u-{i}" for i in range(count))
    assert {m["inviter_id"] for m in changed} == {"u-a"}


async def test_two_users_inviting_each_other_in_one_chunk_are_bound_one_way(
    platform: Platform,
) -> None:
    code_x = await invite_code(platform, "u-x")
    code_y = await invite_code(platform, "u-y")

    await deliver(
        platform,
        [
            registration(platform, "u-x", code_y, "evt-x"),
            registration(platform, "u-y", code_x, "evt-y"),
        ],
    )

    # The second would make u-y their own inviter: refused, its node still completes.
    assert await registration_bindings(platform) == {("tenant-a", "u-x"): "u-y"}
    assert set(await _completions(platform)) == {"u-x", "u-y"}


async def test_a_chunk_closing_a_cycle_with_an_existing_chain_is_refused_alone(
    platform: Platform,
) -> None:
    code_a = await invite_code(platform, "u-a")
    code_c = await invite_code(platform, "u-c")
    await deliver(
        platform,
        [
            registration(platform, "u-b", code_a, "evt-b"),
            registration(platform, "u-c", code_a, "evt-c"),
        ],
    )

    # u-a signs up with u-c's code: u-c's inviter is u-a, a cycle. u-z in the same chunk
    # is bound as usual.
    await deliver(
        platform,
        [
            registration(platform, "u-a", code_c, "evt-a"),
            registration(platform, "u-z", code_a, "evt-z"),
        ],
    )

    assert await registration_bindings(platform) == {
        ("tenant-a", "u-b"): "u-a",
        ("tenant-a", "u-c"): "u-a",
        ("tenant-a", "u-z"): "u-a",
    }
    assert set(await _completions(platform)) == {"u-a", "u-b", "u-c", "u-z"}


async def test_a_self_invitation_in_a_chunk_binds_nothing(platform: Platform) -> None:
    code_a = await invite_code(platform, "u-a")

    await deliver(
        platform,
        [
            registration(platform, "u-a", code_a, "evt-a"),
            registration(platform, "u-b", code_a, "evt-b"),
        ],
    )

    assert await registration_bindings(platform) == {("tenant-a", "u-b"): "u-a"}
    assert set(await _completions(platform)) == {"u-a", "u-b"}


async def test_a_user_registered_twice_in_one_chunk_is_bound_once(platform: Platform) -> None:
    code_a = await invite_code(platform, "u-a")
    code_c = await invite_code(platform, "u-c")

    await deliver(
        platform,
        [
            registration(platform, "u-b", code_a, "evt-b-1"),
            registration(platform, "u-b", code_c, "evt-b-2"),
        ],
    )

    assert await registration_bindings(platform) == {("tenant-a", "u-b"): "u-a"}
    assert await _completions(platform) == {"u-b": "evt-b-1"}


async def test_a_code_entered_after_the_grace_binds_nothing(platform: Platform) -> None:
    code_a = await invite_code(platform, "u-a")
    signed_up = registration(platform, "u-b", None, "evt-b-1")
    signed_up["registered_at"] = (platform.clock.now() - timedelta(days=30)).isoformat()
    await deliver(platform, [signed_up])

    # Another registration fact of u-b, naming a code long after the grace, next to a user
    # whose code is in time.
    await deliver(
        platform,
        [
            registration(platform, "u-b", code_a, "evt-b-2"),
            registration(platform, "u-d", code_a, "evt-d"),
        ],
    )

    assert await registration_bindings(platform) == {("tenant-a", "u-d"): "u-a"}
    assert (await _completions(platform))["u-b"] == "evt-b-1"
