"""referral_service: invite codes and the referral graph (bindings per node)."""
