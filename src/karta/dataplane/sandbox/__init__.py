"""Per-session sandboxes for harness processes, and the model proxy they reach models through
(docs/security.md)."""
