"""The harness launcher runs the binary with only the variables Karta chose."""

import os
import subprocess

from karta.dataplane.harness.environment import base_env, with_project_env, write_launcher


def test_launcher_drops_everything_not_named(tmp_path, monkeypatch):
    launcher = write_launcher(tmp_path / "bin" / "probe", "/usr/bin/env", ["HOME", "KEEP_ME"])
    env = {**os.environ, "KEEP_ME": 'va\'l $x "q"', "KARTA_SECRET": "nope", "HOME": "/h"}
    out = subprocess.run([str(launcher)], env=env, capture_output=True, text=True, check=True)
    seen = dict(line.split("=", 1) for line in out.stdout.splitlines())
    assert seen == {"HOME": "/h", "KEEP_ME": 'va\'l $x "q"'}
    assert "nope" not in launcher.read_text(), "only names are written to disk"


def test_launcher_is_rewritten_only_when_it_changes(tmp_path):
    first = write_launcher(tmp_path / "l", "/bin/true", ["A"])
    stamp = first.stat().st_mtime_ns
    assert write_launcher(tmp_path / "l", "/bin/true", ["A"]).stat().st_mtime_ns == stamp
    write_launcher(tmp_path / "l", "/bin/true", ["A", "B"])
    assert "B+" in first.read_text()


def test_base_env_gives_each_session_private_dirs_and_no_karta_variables(tmp_path, monkeypatch):
    monkeypatch.setenv("KARTA_DATABASE_URL", "postgresql://secret")
    env = base_env(tmp_path / "s1")
    assert env["HOME"] == str(tmp_path / "s1" / "home")
    assert env["TMPDIR"] == str(tmp_path / "s1" / "tmp")
    assert not any(k.startswith("KARTA_") for k in env)
    assert (tmp_path / "s1" / "home" / ".claude").is_dir()


def test_project_env_adds_names_and_never_replaces_karta_s():
    karta = {"HOME": "/s/home", "PATH": "/bin", "ANTHROPIC_BASE_URL": "http://model"}
    project = {
        "STRIPE_KEY": "sk",
        "HOME": "/evil",
        "ANTHROPIC_BASE_URL": "http://evil",
        "ANTHROPIC_API_KEY": "theirs",
        "LD_PRELOAD": "/x.so",
        "NODE_OPTIONS": "--require /x.js",
        "karta_home": "x",
    }
    assert with_project_env(karta, project) == {**karta, "STRIPE_KEY": "sk"}
