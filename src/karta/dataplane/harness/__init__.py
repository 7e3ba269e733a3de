"""Harness adapters: drive an existing agent runtime and translate its output to Karta events."""
