"""Per-session folders: a private copy of the app (the workspace) and the harness's own state."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

# Never copied into a session's workspace: VCS data, local secrets, bulky caches.
IGNORED = shutil.ignore_patterns(".git", ".env", ".env.*", "__pycache__", ".venv", "node_modules")


@dataclass(frozen=True)
class SessionFiles:
    root: Path

    @property
    def workspace(self) -> Path:
        return self.root / "workspace"

    @property
    def state(self) -> Path:
        return self.root / "state"

    def create(self, app_root: Path) -> None:
        """Copy the app into a fresh workspace (atomically, so a crash leaves no half copy)."""
        if self.workspace.exists():
            return
        self.root.mkdir(parents=True, exist_ok=True)
        staging = self.root / "workspace.partial"
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(app_root, staging, ignore=IGNORED, symlinks=True)
        staging.rename(self.workspace)
        self.state.mkdir(exist_ok=True)

    def create_pooled(self, app_root: Path) -> None:
        """`create` for a pre-started harness, marked as nobody's until a session adopts it
        (the mark comes first: a crash mid-copy leaves a marked folder)."""
        self.root.mkdir(parents=True)
        self.mark_pooled()
        self.create(app_root)

    def destroy(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    @property
    def _pool_mark(self) -> Path:
        return self.root / POOLED  # beside the workspace: no sandbox sees it

    def mark_pooled(self) -> None:
        """These folders belong to a pre-started harness no session has adopted yet."""
        self._pool_mark.touch()

    def adopt(self) -> None:
        self._pool_mark.unlink(missing_ok=True)


POOLED = "pooled"


def session_files(home: Path, session_id: str) -> SessionFiles:
    return SessionFiles(home / "sessions" / session_id)


def remove_pooled(home: Path) -> int:
    """Remove the folders of pre-started harnesses a previous server left unadopted (it
    stopped without closing them); returns how many."""
    removed = 0
    for mark in (home / "sessions").glob(f"*/{POOLED}"):
        SessionFiles(mark.parent).destroy()
        removed += 1
    return removed
