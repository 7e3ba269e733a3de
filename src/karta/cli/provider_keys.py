"""The organization's own provider keys (`karta keys provider set|list|revoke`) and model
settings (`karta model show|set|clear`). Secrets are prompted for (hidden) or read from a file,
never taken as a command-line argument, which shell history and `ps` would keep."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from karta.cli import manage_render as show
from karta.cli.control import Connection, connected, plain, stderr, stdout

provider_app = typer.Typer(
    help="Your own model-provider keys (BYOK), used only by Karta's model proxy.",
    no_args_is_help=True,
)
Project = Annotated[
    str | None, typer.Option("--project", "-p", help="A project's slug (default: the org).")
]


def _secret(prompt: str) -> str:
    return str(typer.prompt(prompt, hide_input=True))


def _credential(
    provider: str,
    region: str | None,
    access_key_id: str | None,
    service_account: Path | None,
    gcp_project: str | None,
) -> dict[str, str]:
    if provider in ("anthropic", "openai", "openrouter"):
        return {"api_key": _secret(f"{provider} API key")}
    if provider == "bedrock":
        if not access_key_id or not region:
            stderr().print("[red]bedrock needs --access-key-id and --region[/]")
            raise typer.Exit(2)
        credential = {
            "access_key_id": access_key_id,
            "secret_access_key": _secret("AWS secret access key"),
            "region": region,
        }
        token = typer.prompt("AWS session token (empty: none)", default="", hide_input=True)
        return {**credential, "session_token": token} if token else credential
    if provider == "vertex":
        if service_account is None or not gcp_project or not region:
            stderr().print("[red]vertex needs --service-account, --gcp-project and --region[/]")
            raise typer.Exit(2)
        return {
            "service_account": service_account.read_text(),
            "project": gcp_project,
            "region": region,
        }
    stderr().print("[red]provider: anthropic, openai, openrouter, bedrock or vertex[/]")
    raise typer.Exit(2)


@provider_app.command("set")
@connected()
def provider_set(
    connection: Connection,
    provider: Annotated[
        str, typer.Argument(help="anthropic, openai, openrouter, bedrock or vertex.")
    ],
    label: Annotated[str, typer.Option(help="What the key is (shown in listings).")],
    project: Project = None,
    region: Annotated[str | None, typer.Option(help="bedrock, vertex: the region.")] = None,
    access_key_id: Annotated[str | None, typer.Option(help="bedrock: the access key id.")] = None,
    service_account: Annotated[
        Path | None, typer.Option(help="vertex: the service account's key file (JSON).")
    ] = None,
    gcp_project: Annotated[str | None, typer.Option(help="vertex: the GCP project id.")] = None,
    validate: Annotated[
        bool, typer.Option(help="Check the key with one call to the provider first.")
    ] = True,
) -> None:
    """Set the key for a provider (it replaces the active one); the secret is prompted for."""
    credential = _credential(provider, region, access_key_id, service_account, gcp_project)
    with connection.client() as client:
        key = client.provider_keys.create(
            provider, label=label, credential=credential, project=project, validate=validate
        ).to_dict()
    scope = f"project {escape(key['project'])}" if key["project"] else "the organization"
    replaced = f", replacing key {key['replaced']}" if key.get("replaced") else ""
    stdout().print(
        f"Set {provider} key {key['id']} …{key['last4']} for {scope}{replaced}.", markup=False
    )


@provider_app.command("list")
@connected()
def provider_list(connection: Connection, project: Project = None) -> None:
    """List provider keys (last four characters only)."""
    with connection.client() as client:
        stdout().print(show.provider_keys_table(plain(client.provider_keys.list(project=project))))


@provider_app.command("revoke")
@connected()
def provider_revoke(
    connection: Connection,
    key_id: Annotated[int, typer.Argument(metavar="ID", help="The key's id (list shows it).")],
) -> None:
    """Revoke a provider key and shred it; model calls stop using it at once."""
    with connection.client() as client:
        key = client.provider_keys.revoke(key_id).to_dict()
    stdout().print(f"Revoked {key['provider']} key {key['id']} …{key['last4']}.", markup=False)


model_app = typer.Typer(
    help="Which provider and model the organization's (or a project's) calls use.",
    no_args_is_help=True,
)


@model_app.command("show")
@connected()
def model_show(connection: Connection, project: Project = None) -> None:
    """Show the model settings (a project's own, when --project is given)."""
    with connection.client() as client:
        settings = client.model_settings.get(project=project).to_dict()
    for line in show.model_settings_lines(settings):
        stdout().print(line, markup=False)


@model_app.command("set")
@connected()
def model_set(
    connection: Connection,
    project: Project = None,
    provider: Annotated[str | None, typer.Option(help="Where calls go.")] = None,
    model: Annotated[str | None, typer.Option(help="The model calls use.")] = None,
    endpoint_url: Annotated[
        str | None, typer.Option(help="anthropic/openai: a compatible endpoint (https).")
    ] = None,
) -> None:
    """Replace the model settings of the organization or of a project."""
    with connection.client() as client:
        answer = client.model_settings.set(
            provider=provider, model=model, endpoint_url=endpoint_url, project=project
        ).to_dict()
    for line in show.model_settings_lines(answer):
        stdout().print(line, markup=False)


@model_app.command("clear")
@connected()
def model_clear(connection: Connection, project: Project = None) -> None:
    """Remove the settings (a project then follows the organization's)."""
    with connection.client() as client:
        client.model_settings.clear(project=project)
    stdout().print("Cleared the model settings.")
