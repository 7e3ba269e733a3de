"""Where a client connects and with what credential: the arguments, else the environment, else
the local credentials file (`$KARTA_HOME/credentials.json`, written by `karta serve`,
`karta signup` and `karta login`).

- the data plane: `base_url`, else `KARTA_BASE_URL`, else `url` (default
  `http://127.0.0.1:8000`);
- the control plane: `control_url`, else `KARTA_CONTROL_URL`, else the server's `control_url`,
  else `control_url` (default `http://127.0.0.1:8001`);
- the credential: `api_key`, else `KARTA_API_KEY`, else the server's `api_key`, else `api_key`
  (on the control plane a login `user_token` comes before the stored keys);
- the organization (for a user in several): `org`, else `org`.

"The server's" entries are those `karta serve` keeps per data-plane URL under `servers`, so a
client pointed at one local server uses that server's key.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from karta.core.credentials_file import read_credentials, server_entry
from karta.core.home import karta_home

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
DEFAULT_CONTROL_URL = "http://127.0.0.1:8001"


@dataclass(frozen=True)
class ClientConfig:
    base_url: str
    control_url: str
    api_key: str | None  # for the data plane
    control_key: str | None  # for the control plane: a login token or an API key
    org: str | None

    @classmethod
    def resolve(
        cls,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        control_url: str | None = None,
        org: str | None = None,
    ) -> ClientConfig:
        stored = read_credentials(karta_home())
        base = base_url or os.environ.get("KARTA_BASE_URL") or _str(stored, "url")
        base = (base or DEFAULT_BASE_URL).rstrip("/")
        server = server_entry(stored, base)
        control = (
            control_url
            or os.environ.get("KARTA_CONTROL_URL")
            or _str(server, "control_url")
            or _str(stored, "control_url")
            or DEFAULT_CONTROL_URL
        )
        given = api_key or os.environ.get("KARTA_API_KEY")
        data_key = given or _str(server, "api_key") or _str(stored, "api_key")
        control_key = given or _str(stored, "user_token") or data_key
        return cls(base, control.rstrip("/"), data_key, control_key, org or _str(stored, "org"))


def _str(data: dict[str, Any], name: str) -> str | None:
    value = data.get(name)
    return value if isinstance(value, str) and value else None
