"""Karta: host harness applications (Claude Code, OpenCode) as multi-tenant agent services."""

__version__ = "0.1.0"
