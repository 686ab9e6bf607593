"""Job names (``"domain.verb"``) and the queue each belongs to."""

from __future__ import annotations

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
