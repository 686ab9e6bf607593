"""reward_service: prizes, reward records and their state machine, issuance, wallet."""
