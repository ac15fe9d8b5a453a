"""A real `leadbridge serve` process on 127.0.0.1, started and stopped by the tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import Result

from bottlecrm_peer import BottleCRMServer, BottleCRMUser
from leadbridge.connectors.bottlecrm import BottleCRMClient
from support import TEST_RANGES, Cli


@pytest.fixture
def bottlecrm_cli(cli: Cli, bottlecrm: BottleCRMServer,
                  bottlecrm_user: BottleCRMUser) -> Callable[[dict[str, str | None]], Cli]:
    """`connect(env)`: the `cli` fixture with `env` added, after `connections add bottle` for
    the shared BottleCRM; returns `invoke(*args, stdin=None)`."""

    def connect(env: dict[str, str | None]) -> Cli:
        def invoke(*args: str, stdin: str | None = None) -> Result:
            return cli(*args, input=stdin, **env)

        added = invoke("connections", "add", "bottle", "--kind", "bottlecrm", "--url",
                       bottlecrm.url, "--email", bottlecrm_user.email, "--password-stdin",
                       stdin=bottlecrm_user.password + "\n")
        assert added.exit_code == 0, added.output
        return invoke

    return connect


@pytest.fixture
def crm(bottlecrm_api: BottleCRMClient) -> Any:
    """The shared BottleCRM, read and written through its own API to check what a sync did."""
    return bottlecrm_api


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LiveServer:
    url: str
    env: dict[str, str]
    cwd: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = open(self.cwd / "server.log", "ab")  # noqa: SIM115 - lives as long as the process
        self.proc = subprocess.Popen([sys.executable, "-m", "leadbridge", "serve"], env=self.env,
                                     cwd=self.cwd, stdout=log, stderr=log)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("server exited: " + (self.cwd / "server.log").read_text())
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError("server did not answer within 30 s")

    def kill(self) -> None:
        """SIGKILL: no shutdown hook runs, nothing queued in memory survives."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def cli(self, *args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "leadbridge", *args], env=self.env,
                              cwd=self.cwd, capture_output=True, text=True, check=True)
        return done.stdout.strip()


@pytest.fixture
def live_server(db_url: str, tmp_path: Path) -> Iterator[LiveServer]:
    port = free_port()
    ranges = tmp_path / "ranges.csv"
    ranges.write_text(TEST_RANGES, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADBRIDGE_")}
    env.update({
        "LEADBRIDGE_DATABASE_URL": db_url,
        "LEADBRIDGE_PORT": str(port),
        "LEADBRIDGE_DATA_DIR": str(tmp_path / "var"),
        "LEADBRIDGE_IDENTIFY__IP_RANGES_CSV": str(ranges),
    })
    server = LiveServer(f"http://127.0.0.1:{port}", env, tmp_path)
    yield server
    server.stop()
