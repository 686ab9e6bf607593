"""The referral service's copy of sandbox clocks."""
