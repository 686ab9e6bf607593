"""Activity stats: "How is the campaign doing?" (SPEC §5)."""
