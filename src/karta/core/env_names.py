"""Which environment variable names belong to Karta and the harnesses. The data plane builds a
harness's environment from these; the control plane refuses a project env var that would
override one of them when it is set, rather than the data plane dropping it later."""

from __future__ import annotations

# Variables the host may legitimately lend a harness (never anything named KARTA_*).
HOST_PASSTHROUGH = (
    "PATH",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "TERM",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "NODE_EXTRA_CA_CERTS",
)
# Variables the Claude Agent SDK itself sets for the CLI.
SDK_VARIABLES = (
    "CLAUDE_CODE_ENTRYPOINT",
    "CLAUDE_AGENT_SDK_VERSION",
    "CLAUDE_AGENT_SDK_CLIENT_APP",
    "CLAUDE_AGENT_SDK_DERIVED_CLIENT_APP",
    "CLAUDE_CODE_SDK_READS_SESSION_STATE",
    "CLAUDE_CODE_ENABLE_SDK_FILE_CHECKPOINTING",
    "PWD",
)
# What a project's env vars can never set, whether or not Karta sets it this time: Karta's own
# settings, the harnesses' and model endpoints' (a project must not point the platform's model
# key at another host), and what would inject code into the harness process itself.
RESERVED_PREFIXES = ("KARTA_", "ANTHROPIC_", "OPENAI_", "CLAUDE_", "OPENCODE_", "XDG_", "LD_")
RESERVED_NAMES = frozenset(
    {*HOST_PASSTHROUGH, *SDK_VARIABLES, "HOME", "TMPDIR", "USER", "SHELL", "NODE_OPTIONS"}
    | {"NODE_PATH", "DISABLE_AUTOUPDATER", "PYTHONPATH", "PYTHONSTARTUP", "BASH_ENV", "ENV"}
)


def reserved(name: str) -> bool:
    return name.upper() in RESERVED_NAMES or name.upper().startswith(RESERVED_PREFIXES)
