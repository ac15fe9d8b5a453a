"""The real BottleCRM (PyPI `django-crm`) as a subprocess on 127.0.0.1, for end-to-end tests.

BottleCRM's wheel declares no dependencies and installs top-level packages named `accounts`,
`common`, `contacts`, `crm`, `leads`, `tasks` (and more), so it lives in its own virtual
environment, built once and reused while its stamp file lists the same requirements.

    venv = ensure_bottlecrm_venv()
    with BottleCRMServer(venv, tmp_dir) as crm:
        token = crm.login(crm.register())

See docs/bottlecrm.md for what its API does and the quirks found here.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import venv as venv_module
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import httpx

REPO_ROOT = Path(__file__).resolve().parents[1]
VENV_ENV = "LEADBRIDGE_BOTTLECRM_VENV"

# The set that resolves for django-crm 0.9.0 (its wheel declares none), plus a WSGI server.
REQUIREMENTS: tuple[str, ...] = (
    "django-crm==0.9.0",
    "Django>=3.2,<3.3",
    "djangorestframework<3.13",
    "djangorestframework-jwt==1.11.0",
    "drf-yasg<1.21",
    "django-cors-headers<3.14",
    "django-ses",
    "django-phonenumber-field<6",
    "phonenumbers",
    "django-settings-export",
    "celery<5.3",
    "python-dotenv",
    "arrow",
    "pytz",
    "six",
    "sentry-sdk",
    "waitress==3.0.2",
)
STAMP_NAME = "leadbridge-requirements.txt"

DATA_DIR = Path(__file__).resolve().parent / "crm" / "bottlecrm"
SETTINGS_MODULE = "leadbridge_bottlecrm_settings"
LAUNCHER_NAME = "serve_bottlecrm.py"


class BottleCRMHarnessError(RuntimeError):
    """The BottleCRM peer could not be installed, migrated or started."""


def default_venv_dir() -> Path:
    """`$LEADBRIDGE_BOTTLECRM_VENV`, else `<repo>/.cache/bottlecrm-venv`."""
    return Path(os.environ.get(VENV_ENV) or REPO_ROOT / ".cache" / "bottlecrm-venv")


def venv_python(venv_dir: Path) -> Path:
    return venv_dir / "bin" / "python"


def _stamp_text() -> str:
    version = ".".join(str(n) for n in sys.version_info[:2])
    return f"# python {version}\n" + "\n".join(REQUIREMENTS) + "\n"


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock, so two test sessions never build the same venv at once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_bottlecrm_venv(venv_dir: Path | None = None) -> Path:
    """Return a virtual environment with BottleCRM installed, building it when needed.

    Reused as long as its stamp file records the same requirement set and Python version;
    otherwise it is removed and rebuilt (pip install from PyPI, about 25 s here).
    """
    venv_dir = Path(venv_dir) if venv_dir is not None else default_venv_dir()
    stamp = venv_dir / STAMP_NAME
    wanted = _stamp_text()
    with _locked(venv_dir.with_name(venv_dir.name + ".lock")):
        if (
            stamp.is_file()
            and stamp.read_text(encoding="utf-8") == wanted
            and venv_python(venv_dir).exists()
        ):
            return venv_dir
        if venv_dir.exists():
            shutil.rmtree(venv_dir)
        venv_module.EnvBuilder(with_pip=True, clear=True).create(venv_dir)
        done = subprocess.run(
            [str(venv_python(venv_dir)), "-m", "pip", "install", "--quiet",
             "--disable-pip-version-check", *REQUIREMENTS],
            capture_output=True, text=True, check=False,
        )
        if done.returncode != 0:
            tail = "\n".join((done.stdout + done.stderr).splitlines()[-30:])
            raise BottleCRMHarnessError(f"pip could not install BottleCRM into {venv_dir}:\n{tail}")
        stamp.write_text(wanted, encoding="utf-8")
    return venv_dir


@dataclass(frozen=True)
class BottleCRMUser:
    """A user registered through the real API (every such user is an ADMIN)."""

    email: str
    username: str
    password: str = field(repr=False)


@dataclass
class BottleCRMServer:
    """One BottleCRM server: its own SQLite database in `home`, served by waitress.

    `start()` writes the settings module and the launcher, migrates (or copies a migrated
    template kept beside the venv), starts the server on a free port and waits until it
    answers; `stop()` ends it. Also a context manager.
    """

    venv_dir: Path
    home: Path
    jwt_seconds: int = 86_400
    startup_timeout: float = 60.0
    port: int | None = None
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    timings: dict[str, float] = field(default_factory=dict)
    _secret: str = field(default_factory=lambda: secrets.token_urlsafe(32), repr=False)

    @property
    def url(self) -> str:
        if self.port is None:
            raise BottleCRMHarnessError("the BottleCRM server is not started")
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return self.url + "/api"

    @property
    def database(self) -> Path:
        return self.home / "bottlecrm.sqlite3"

    @property
    def log_path(self) -> Path:
        return self.home / "server.log"

    def _env(self, port: int | None = None) -> dict[str, str]:
        env = {k: os.environ[k] for k in ("PATH", "LANG", "LC_ALL", "TZ") if k in os.environ}
        env.update({
            "HOME": str(self.home),
            "PYTHONPATH": str(self.home),
            "PYTHONUNBUFFERED": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
            "DJANGO_SETTINGS_MODULE": SETTINGS_MODULE,
            "CELERY_BROKER_URL": "memory://",
            "BOTTLECRM_HOME": str(self.home),
            "BOTTLECRM_DB": str(self.database),
            "BOTTLECRM_SECRET_KEY": self._secret,
            "BOTTLECRM_JWT_SECONDS": str(self.jwt_seconds),
            "BOTTLECRM_PORT": str(port or 0),
        })
        return env

    def _write_files(self) -> str:
        """Copy the settings module and the launcher into `home`; return the settings text."""
        self.home.mkdir(parents=True, exist_ok=True)
        for name in (f"{SETTINGS_MODULE}.py", LAUNCHER_NAME):
            shutil.copyfile(DATA_DIR / name, self.home / name)
        return (DATA_DIR / f"{SETTINGS_MODULE}.py").read_text(encoding="utf-8")

    def _migrate(self, settings_text: str) -> None:
        """Migrate, or copy the migrated empty database kept beside the venv."""
        key = hashlib.sha256((_stamp_text() + settings_text).encode()).hexdigest()[:16]
        template = self.venv_dir / f"migrated-{key}.sqlite3"
        if template.is_file():
            shutil.copyfile(template, self.database)
            return
        done = subprocess.run(
            [str(venv_python(self.venv_dir)), "-m", "django", "migrate", "--noinput"],
            env=self._env(), cwd=self.home, capture_output=True, text=True, check=False,
        )
        if done.returncode != 0:
            tail = "\n".join((done.stdout + done.stderr).splitlines()[-30:])
            raise BottleCRMHarnessError(f"BottleCRM migrate failed:\n{tail}")
        for stale in self.venv_dir.glob("migrated-*.sqlite3"):
            stale.unlink(missing_ok=True)
        partial = template.with_suffix(f".{os.getpid()}.tmp")
        shutil.copyfile(self.database, partial)
        os.replace(partial, template)

    def start(self) -> BottleCRMServer:
        if self.proc is not None and self.proc.poll() is None:
            return self
        started = time.monotonic()
        settings_text = self._write_files()
        self._migrate(settings_text)
        self.timings["migrate_s"] = time.monotonic() - started
        port_file = self.home / "port"
        port_file.unlink(missing_ok=True)
        served = time.monotonic()
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [str(venv_python(self.venv_dir)), LAUNCHER_NAME],
                env=self._env(self.port), cwd=self.home, stdout=log, stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BottleCRMHarnessError("BottleCRM exited at startup:\n" + self._log_tail())
            if self.port is None and port_file.is_file():
                self.port = int(port_file.read_text(encoding="utf-8"))
            if self.port is not None and self._answers():
                self.timings["serve_s"] = time.monotonic() - served
                return self
            time.sleep(0.05)
        self.stop()
        raise BottleCRMHarnessError(
            f"BottleCRM did not answer within {self.startup_timeout:.0f} s:\n" + self._log_tail()
        )

    def _answers(self) -> bool:
        try:
            response = httpx.get(self.api_url + "/profile/", timeout=2)
        except httpx.TransportError:
            return False
        return response.status_code == 401

    def _log_tail(self, lines: int = 40) -> str:
        if not self.log_path.is_file():
            return "(no log)"
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)

    def __enter__(self) -> BottleCRMServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def register(self, *, prefix: str = "tester") -> BottleCRMUser:
        """Register a new user through `POST /api/auth/register/` (it becomes an ADMIN)."""
        tag = secrets.token_hex(4)
        user = BottleCRMUser(
            email=f"{prefix}-{tag}@example.com",
            username=f"{prefix}{tag}",
            password=secrets.token_urlsafe(16),
        )
        response = httpx.post(
            self.api_url + "/auth/register/",
            json={"email": user.email, "username": user.username, "password": user.password},
            timeout=30,
        )
        if response.status_code != 200:
            raise BottleCRMHarnessError(
                f"registration refused ({response.status_code}): {response.text[:500]}"
            )
        return user

    def login(self, user: BottleCRMUser) -> str:
        """A JWT for `user` from `POST /api/auth/login/` (send as `Authorization: JWT <token>`)."""
        response = httpx.post(
            self.api_url + "/auth/login/",
            json={"email": user.email, "password": user.password},
            timeout=30,
        )
        body = response.json()
        if response.status_code != 200 or "token" not in body:
            raise BottleCRMHarnessError(f"login refused ({response.status_code})")
        return str(body["token"])
