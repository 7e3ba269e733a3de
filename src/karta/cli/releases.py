"""Release commands against the control plane: publish a folder as a release, list releases,
activate one, roll back, and the project's env vars (`karta env set|unset|list`).

`karta publish` packs the folder into a temporary file (never into memory) and streams it up; the
control plane validates it and records `vN`, ready or failed.
"""

from __future__ import annotations

import hashlib
import sys
import tempfile
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from karta.cli import manage_render as show
from karta.cli.control import Connection, connected, plain, stderr, stdout
from karta.core.slugs import slugify

if TYPE_CHECKING:
    from karta.client import Karta


def default_project(root: Path) -> str:
    """`name` in `karta.toml`, else the folder's name, as a slug."""
    name = root.resolve().name
    manifest = root / "karta.toml"
    if manifest.is_file():
        try:
            name = str(tomllib.loads(manifest.read_text()).get("name") or name)
        except tomllib.TOMLDecodeError as exc:
            stderr().print(f"[red]karta.toml is not valid TOML ({exc}); name one with --project[/]")
            raise typer.Exit(2) from exc
    slug = slugify(name)
    if not slug:
        stderr().print(f"[red]cannot make a project slug of {name!r}; name one with --project[/]")
        raise typer.Exit(2)
    return slug


Project = Annotated[str, typer.Argument(metavar="SLUG", help="The project.")]
Version = Annotated[str, typer.Argument(metavar="VERSION", help="A release, e.g. v3.")]


@connected()
def publish(
    connection: Connection,
    directory: Annotated[Path, typer.Argument(help="The harness app folder.")] = Path("."),
    project: Annotated[
        str | None,
        typer.Option(
            "--project",
            "-p",
            metavar="SLUG",
            help="The project (default: name in karta.toml, else the folder name).",
            show_default=False,
        ),
    ] = None,
    activate: Annotated[
        bool, typer.Option("--activate/--no-activate", help="Activate the release when valid.")
    ] = True,
    include: Annotated[
        list[str] | None,
        typer.Option(
            "--include",
            metavar="PATTERN",
            help="Pack files the default ignores drop, e.g. .env.example (repeatable).",
        ),
    ] = None,
) -> None:
    """Publish a folder as a new release of a project (created if it does not exist yet)."""
    from karta.client import NotFoundError, UnprocessableEntityError
    from karta.releases.archive import pack

    if not directory.is_dir():
        stderr().print(f"[red]{escape(str(directory))} is not a folder[/]")
        raise typer.Exit(2)
    slug = project or default_project(directory)
    with tempfile.TemporaryFile(prefix="karta-release-") as archive:
        files = pack(directory, archive, include or ())
        nbytes = archive.tell()
        if not files:
            stderr().print(f"[red]nothing to publish: every file in {directory} is ignored[/]")
            raise typer.Exit(2)
        archive.seek(0)
        sha = hashlib.sha256()
        while chunk := archive.read(1 << 16):
            sha.update(chunk)
        stdout().print(show.packed(len(files), nbytes, sha.hexdigest()), markup=False)
        archive.seek(0)
        with connection.client() as client:
            try:
                client.projects.get(slug)
            except NotFoundError as exc:
                if exc.code != "project_not_found":
                    raise
                _create_project(client, slug)
            try:
                release = (
                    client.projects(slug).releases.publish(archive, activate=activate).to_dict()
                )
            except UnprocessableEntityError as exc:
                if exc.code != "release_invalid" or not isinstance(exc.body.get("release"), dict):
                    raise
                failed = exc.body["release"]
                _print_release(failed, log=True)
                stderr().print(
                    f"[red]{escape(slug)} {failed['name']} failed validation: "
                    f"{escape(exc.message)}. It was recorded as failed and is not active.[/]"
                )
                raise typer.Exit(1) from exc
    if not release["created"]:
        stdout().print(
            f"Already published: this content is {escape(slug)} {release['name']} "
            f"({show.release_state(release)}); no new release was made.",
        )
        if not release["active"]:
            stdout().print(f"Activate it with: karta activate {escape(slug)} {release['name']}")
        return
    _print_release(release, log=True)
    if not release["active"]:
        stdout().print(f"Activate it with: karta activate {escape(slug)} {release['name']}")


def _create_project(client: Karta, slug: str) -> None:
    from karta.client import APIStatusError

    try:
        client.projects.create(slug)
    except APIStatusError as exc:
        if exc.code == "project_exists":  # someone else made it a moment ago
            return
        stderr().print(f"project {escape(slug)!r} does not exist yet, and creating it failed:")
        raise
    stdout().print(f"Created project [bold]{escape(slug)}[/].")


def _print_release(release: dict[str, Any], log: bool = False) -> None:
    out = stdout()
    for line in show.release_summary(release):
        out.print(line, markup=False)
    if log:
        for line in show.build_log(release):
            out.print(line, markup=False)


@connected()
def releases(
    connection: Connection,
    project: Project,
    version: Annotated[
        str | None,
        typer.Argument(metavar="[VERSION]", help="Show one release and its build log."),
    ] = None,
) -> None:
    """List a project's releases (newest first), or show one with its build log."""
    with connection.client() as client:
        releases = client.projects(project).releases
        if version is not None:
            _print_release(releases.get(version).to_dict(), log=True)
            return
        rows = plain(releases.list())
    if not rows:
        stdout().print(f"{escape(project)} has no releases yet: karta publish DIR -p {project}")
        return
    stdout().print(show.releases_table(rows, project))


@connected()
def activate(connection: Connection, project: Project, version: Version) -> None:
    """Make a release the active one: new sessions start on it."""
    with connection.client() as client:
        release = client.projects(project).releases.activate(version)
    stdout().print(f"{escape(project)} {release.name} is active.")


@connected()
def rollback(
    connection: Connection,
    project: Project,
    to: Annotated[
        str | None,
        typer.Option(
            "--to", metavar="VERSION", help="The release to go back to (default: the previous)."
        ),
    ] = None,
) -> None:
    """Go back to the previous ready release (or --to one): new sessions start on it."""
    with connection.client() as client:
        release = client.projects(project).releases.rollback(to=to)
    stdout().print(f"Rolled {escape(project)} back: {release.name} is active.")


env_app = typer.Typer(help="Env vars of a project (encrypted; never shown back).")


def _assignments(pairs: list[str]) -> list[tuple[str, str]]:
    """`NAME=value` pairs; `NAME=-` reads the value from stdin (hidden prompt on a terminal)."""
    parsed = []
    for pair in pairs:
        name, eq, value = pair.partition("=")
        if not eq or not name:
            stderr().print(f"[red]expected NAME=value, got {escape(pair.split('=')[0])!r}[/]")
            raise typer.Exit(2)
        parsed.append((name, value))
    from_stdin = [name for name, value in parsed if value == "-"]
    if len(from_stdin) > 1:
        stderr().print(f"[red]only one value can come from stdin ({', '.join(from_stdin)})[/]")
        raise typer.Exit(2)
    if from_stdin:
        if sys.stdin.isatty():
            value = typer.prompt(from_stdin[0], hide_input=True)
        else:
            value = sys.stdin.read().removesuffix("\n").removesuffix("\r")
        parsed = [(n, value if n == from_stdin[0] else v) for n, v in parsed]
    return parsed


@env_app.command("set")
@connected()
def env_set(
    connection: Connection,
    project: Project,
    pairs: Annotated[
        list[str],
        typer.Argument(
            metavar="NAME=VALUE", help="Vars to set; NAME=- reads the value from stdin."
        ),
    ],
) -> None:
    """Set env vars of a project; they reach its harness processes, encrypted at rest."""
    assignments = _assignments(pairs)
    with connection.client() as client:
        env = client.projects(project).env
        for name, value in assignments:
            var = env.set(name, value)
            hint = var.value_hint or "…"
            shown = f" (value {escape(hint)})" if hint != "…" else ""
            stdout().print(f"Set {escape(var.name)} on {escape(project)}{shown}.")


@env_app.command("unset")
@connected()
def env_unset(
    connection: Connection,
    project: Project,
    names: Annotated[list[str], typer.Argument(metavar="NAME", help="Vars to remove.")],
) -> None:
    """Remove env vars from a project."""
    with connection.client() as client:
        env = client.projects(project).env
        for name in names:
            env.unset(name)
            stdout().print(f"Removed {escape(name)} from {escape(project)}.")


@env_app.command("list")
@connected()
def env_list(connection: Connection, project: Project) -> None:
    """List a project's env vars: names and a hint, never a value."""
    with connection.client() as client:
        variables = plain(client.projects(project).env.list())
    stdout().print(show.env_table(variables, project))


def register(app: typer.Typer) -> None:
    """Add the release and env commands to the `karta` app."""
    app.command()(publish)
    app.command()(releases)
    app.command()(activate)
    app.command()(rollback)
    app.add_typer(env_app, name="env", no_args_is_help=True)
