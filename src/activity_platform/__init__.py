"""The ``activity-platform`` command: run, migrate, mint tokens, write OpenAPI documents."""
