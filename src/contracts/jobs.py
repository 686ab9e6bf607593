"""Job names (``"domain.verb"``) and the queue each belongs to."""

from __future__ import annotations

from service_kit.outbox.bundles import bundle_when_flushed

# activity service
ACTIVITY_EVALUATE_EVENT = "activity.evaluate_event"
ACTIVITY_RECORD_STATUS_CHANGED = "activity.record_status_changed"
ACTIVITY_BINDING_CHANGED = "activity.binding_changed"

# referral service
REFERRAL_USER_REGISTERED = "referral.user_registered"
REFERRAL_NODE_COMPLETED = "referral.node_completed"

# reward service
REWARD_CREATE_FROM_GRANT = "reward.create_from_grant"
REWARD_ISSUE = "reward.issue"
REWARD_RECONCILE = "reward.reconcile"
REWARD_USER_PROFILE = "reward.user_profile"

# Their consumers read a bundle of messages as its items: what one unit of work writes of
# them leaves in bundles (a reward transaction's status changes, a registration chunk's
# bindings).
bundle_when_flushed(ACTIVITY_RECORD_STATUS_CHANGED, ACTIVITY_BINDING_CHANGED)
