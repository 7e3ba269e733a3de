"""The per-session event log: every event gets a strictly increasing `seq`, is stored, and can be
replayed from any point and then tailed live."""

from karta.dataplane.eventlog.sql import SqlEventLog

__all__ = ["SqlEventLog"]
