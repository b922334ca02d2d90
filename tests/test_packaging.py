"""The installed package is complete: a wheel built from what the Dockerfile copies carries the SQL
migrations, a non-editable install migrates a database from another directory, and started from
another directory as a non-root user (the image's uid 10001) it answers /start on the Telegram fake.

Offline: the wheel is built with `--no-build-isolation --no-index` against the setuptools of this
virtualenv (the dev extra pins one that has `bdist_wheel`). The Dockerfile, `.dockerignore` and
`railway.toml` are checked for what Railway's builder needs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import tomllib
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from storage.migrate import MIGRATIONS_DIR, load_migrations
from tests.fakes.telegram_api import TelegramFake

ROOT = Path(__file__).resolve().parent.parent
MIGRATIONS_SRC = ROOT / "storage" / "migrations"
PIP = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
APP_UID = 10001  # the Dockerfile's USER
# The virtualenv's third-party packages, for a child started with -S (see the migration test).
DEPENDENCY_PATHS = list(dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]))


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


# ---------------------------------------------------------------------------------------------
# The installed package, run as the image runs it: non-root, from a directory of its own.
# ---------------------------------------------------------------------------------------------


def _as_app_user() -> dict[str, Any]:
    """Popen arguments that drop root to the image's uid/gid (nothing when not root)."""
    return {"user": APP_UID, "group": APP_UID, "extra_groups": []} if os.geteuid() == 0 else {}


def _owned_by_app(path: Path) -> Path:
    """A directory the child may write to."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        os.chown(path, APP_UID, APP_UID)
    return path


@pytest.fixture
def runtime() -> Iterator[Path]:
    """A world-traversable base directory (pytest's own tmp root is 0700, closed to uid 10001)."""
    base = Path(tempfile.mkdtemp(prefix="installed-bot-"))
    base.chmod(0o755)
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _interpreter(env: dict[str, str], cwd: Path) -> str:
    """This Python, or when its files are closed to the app user (a root-only pyenv, say) another
    interpreter of the same version that the app user can run with these dependencies."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    check = f"import sys, telegram, numpy; assert '%d.%d' % sys.version_info[:2] == '{version}'"
    refused = []
    for exe in dict.fromkeys([sys.executable, f"/usr/local/bin/python{version}", f"/usr/bin/python{version}"]):
        if not os.access(exe, os.X_OK):
            continue
        try:
            done = subprocess.run([exe, "-S", "-c", check], cwd=cwd, env=env, capture_output=True, text=True,
                                  timeout=60, **_as_app_user())
        except PermissionError as exc:
            refused.append(f"{exe}: {exc}")
            continue
        if done.returncode == 0:
            return exe
        refused.append(f"{exe}: {done.stderr.strip()[-300:]}")
    uid = APP_UID if os.geteuid() == 0 else os.getuid()
    pytest.skip(f"no Python {version} with this virtualenv's packages runs as uid {uid} here: {refused}")


def _installed_env(site: Path, base: Path, fake: TelegramFake) -> dict[str, str]:
    """The image's environment (Dockerfile ENV), pointed at the fake and at writable temp dirs."""
    home = _owned_by_app(base / "home")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("TELEGRAM_", "AVE_", "ANTHROPIC_", "MINIMAX_", "AUTOMATON_", "PYTHON", "VIRTUAL_ENV"))}
    env.update({
        "PYTHONPATH": os.pathsep.join([str(site), *DEPENDENCY_PATHS]),
        "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1",
        "HOME": str(home), "XDG_DATA_HOME": str(home / "xdg"),
        "MPLCONFIGDIR": str(_owned_by_app(home / "matplotlib")),
        "NUMBA_CACHE_DIR": str(_owned_by_app(home / "numba")),
        "CREWAI_DISABLE_TELEMETRY": "true", "OTEL_SDK_DISABLED": "true",
        "TELEGRAM_BOT_TOKEN": fake.token,
        "TELEGRAM_BASE_URL": f"{fake.base_url}/bot",
        "DATABASE_URL": f"sqlite:///{_owned_by_app(base / 'data') / 'bot.db'}",
        "AGENT_TICK_SECONDS": "3600",
        "BACKTEST_WORKERS": "1",
        "LOG_FORMAT": "json", "LOG_LEVEL": "INFO",
    })
    return env


def _uids(pid: int) -> list[int]:
    """Real, effective, saved and filesystem uid of a running process."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return [int(v) for v in line.split()[1:]]
    raise AssertionError(f"no Uid line for pid {pid}")


def test_the_installed_bot_answers_start_as_a_non_root_user(wheel: Path, runtime: Path) -> None:
    site, app = runtime / "site", runtime / "app"
    done = subprocess.run([*PIP, "install", "--no-deps", "--no-index", "--no-compile", "-q", "--target", str(site),
                           str(wheel)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    subprocess.run(["chmod", "-R", "a+rX,go-w", str(site)], check=True)  # root-owned and read-only, as in the image
    app.mkdir(mode=0o755)  # the working directory: empty, unrelated to the checkout, not writable
    with TelegramFake() as fake:
        env = _installed_env(site, runtime, fake)
        python = _interpreter(env, app)
        probe = ("import json, sys, bot, main, storage; print(json.dumps({'files': [bot.__file__, main.__file__, "
                 "storage.__file__], 'editable': [m for m in sys.modules if 'editable' in m]}))")
        done = subprocess.run([python, "-S", "-c", probe], cwd=app, env=env, capture_output=True, text=True,
                              timeout=60, **_as_app_user())
        assert done.returncode == 0, done.stderr
        found = json.loads(done.stdout)
        assert all(Path(f).is_relative_to(site) for f in found["files"]), found  # not the repo checkout
        assert found["editable"] == []

        log_path = runtime / "bot.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen([python, "-S", "-m", "main"], cwd=app, env=env, stdout=log,
                                    stderr=subprocess.STDOUT, **_as_app_user())
        try:
            uids = _uids(proc.pid)
            assert 0 not in uids, uids
            fake.user_sends(4242, "/start", first_name="Installed")
            fake.wait_for(lambda: proc.poll() is not None or fake.sent("sendMessage", chat_id=4242), timeout=25)
            assert proc.poll() is None, log_path.read_text(errors="replace")
            (reply, *_) = fake.sent("sendMessage", chat_id=4242)
            assert reply.params.get("text")
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                code = proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                raise AssertionError("the installed bot did not stop within 30 s of SIGTERM") from None
    output = log_path.read_text(errors="replace")
    assert code == 0, output
    assert "Traceback" not in output and "Unclosed" not in output, output
    assert fake.token not in output
    db = runtime / "data" / "bot.db"
    assert db.exists() and (os.geteuid() != 0 or db.stat().st_uid == APP_UID)
