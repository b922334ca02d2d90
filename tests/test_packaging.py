"""The installed package is complete: a wheel built from what the Dockerfile copies carries the SQL
migrations, and a non-editable install migrates a database from another directory.

Offline: the wheel is built with `--no-build-isolation --no-index` against the setuptools of this
virtualenv (the dev extra pins one that has `bdist_wheel`). The Dockerfile, `.dockerignore` and
`railway.toml` are checked for what Railway's builder needs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest

from storage.migrate import MIGRATIONS_DIR, load_migrations

ROOT = Path(__file__).resolve().parent.parent
MIGRATIONS_SRC = ROOT / "storage" / "migrations"
PIP = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per Dockerfile instruction, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text(encoding="utf-8"))
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def copied_sources() -> list[list[str]]:
    """The sources of each COPY, in order."""
    return [args.split()[:-1] for word, args in dockerfile_instructions() if word == "COPY"]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built from exactly the files the Dockerfile copies (a copy, so the repo gets no build/)."""
    src = tmp_path_factory.mktemp("src")
    for sources in copied_sources():
        for name in sources:
            origin = ROOT / name
            if origin.is_dir():
                shutil.copytree(origin, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                shutil.copy2(origin, src / name)
    out = tmp_path_factory.mktemp("wheel")
    done = subprocess.run([*PIP, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q", "-w", str(out),
                           str(src)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    (built,) = out.glob("*.whl")
    return built


def test_the_wheel_carries_the_migrations(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {f"storage/migrations/{p.name}" for p in MIGRATIONS_SRC.glob("*.sql")}
    assert len(expected) == len(load_migrations()) >= 1
    assert expected <= names
    assert {"main.py", "run_migrations.py", "storage/migrate.py"} <= names
    assert not any(n.startswith(("tests/", "benchmarks/")) or "__pycache__" in n for n in names)


def test_an_installed_copy_migrates_from_another_directory(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    done = subprocess.run([*PIP, "install", "--no-deps", "--no-index", "--no-compile", "-q", "--target", str(site),
                           str(wheel)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # -S: no site processing, so this virtualenv's editable install (a finder pointing at the repo)
    # is not loaded; its site-packages stay on the path only for the third-party dependencies.
    paths = dict.fromkeys([str(site), sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths), "PYTHONDONTWRITEBYTECODE": "1"}
    probe = ("import json, storage; from storage.migrate import MIGRATIONS_DIR, load_migrations; "
             "print(json.dumps({'storage': storage.__file__, 'dir': str(MIGRATIONS_DIR), "
             "'checksums': [m.checksum for m in load_migrations()]}))")
    done = subprocess.run([sys.executable, "-S", "-c", probe], cwd=elsewhere, env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert Path(found["storage"]).is_relative_to(site)
    assert Path(found["dir"]) == site / "storage" / "migrations"
    assert found["checksums"] == [m.checksum for m in load_migrations()]

    db = tmp_path / "installed.db"
    done = subprocess.run([sys.executable, "-S", "-m", "run_migrations", f"sqlite:///{db}"], cwd=elsewhere,
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert f"schema version {len(load_migrations())} " in done.stdout


def test_the_repo_reads_the_migrations_from_the_storage_package() -> None:
    assert Path(str(MIGRATIONS_DIR)) == MIGRATIONS_SRC
    assert not (ROOT / "migrations").exists()


def test_the_dockerfile_builds_on_railway() -> None:
    steps = dockerfile_instructions()
    words = [w for w, _ in steps]
    assert "VOLUME" not in words  # Railway's builder rejects it
    (user,) = [args for w, args in steps if w == "USER"]
    assert user.isdigit(), "USER must be numeric"
    assert f"--uid {user} " in next(args for w, args in steps if w == "RUN" and "useradd" in args)
    assert "/data" in next(args for w, args in steps if w == "RUN" and "useradd" in args)
    # the dependency layer sees pyproject.toml alone, so code changes keep it cached
    deps = next(i for i, (w, args) in enumerate(steps) if w == "RUN" and "pip install -r" in args)
    before = [args.split()[:-1] for w, args in steps[:deps] if w in ("COPY", "ADD")]
    assert before == [["pyproject.toml"]]
    assert not any(src[0] == "migrations" for src in copied_sources())


def test_the_build_context_leaves_out_secrets_and_local_state() -> None:
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    assert {".git", ".venv", ".ci", ".env", "data", "**/*.db", "**/__pycache__"} <= ignored


def test_railway_gives_a_tick_time_to_end() -> None:
    deploy = tomllib.loads((ROOT / "railway.toml").read_text())["deploy"]
    from bot.settings import Settings

    tick = Settings.model_fields["agent_tick_seconds"].default
    assert isinstance(deploy["drainingSeconds"], int) and deploy["drainingSeconds"] >= tick + 20
