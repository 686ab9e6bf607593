"""The reward service's copy of sandbox clocks, and what falls due here as one advances."""
