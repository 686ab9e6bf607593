"""Sandbox tenants and their clocks: creation, reading and advancing (SPEC §6)."""
