"""``micwatch dashboard`` (password, token, bind address) and ``micwatch demo`` end to end: a
real waitress server on 127.0.0.1, logged into over HTTP, stopped with Ctrl-C (SIGINT)."""

from __future__ import annotations

import http.cookiejar
import io
import os
import re
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from dashboard.credentials import Credentials
from dashboard.serve import DEFAULT_PORT, default_host, parse_bind
from monitor.cli import main


def test_set_password_from_stdin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("a long enough secret\n"))
    assert main(["dashboard", "--set-password", "--store-state-dir", str(tmp_path)]) == 0
    assert Credentials(tmp_path).check_password("a long enough secret")
    assert "password set" in capsys.readouterr().out
    monkeypatch.setattr(sys, "stdin", io.StringIO("short\n"))
    assert main(["dashboard", "--set-password", "--store-state-dir", str(tmp_path)]) == 2
    assert "at least 8 characters" in capsys.readouterr().err


def test_new_token_is_printed_once_and_stored_hashed(tmp_path: Path, capsys) -> None:
    assert main(["dashboard", "--new-token", "--store-state-dir", str(tmp_path)]) == 0
    token = capsys.readouterr().out.strip()
    assert len(token) >= 40 and Credentials(tmp_path).check_token(token)
    assert token not in (tmp_path / "dashboard_auth.json").read_text()


def test_bind_addresses() -> None:
    assert parse_bind("127.0.0.1:9000") == ("127.0.0.1", 9000)
    assert parse_bind("[::1]:9000") == ("::1", 9000)
    assert parse_bind("10.1.2.3") == ("10.1.2.3", DEFAULT_PORT)
    assert parse_bind(":9000") == (default_host(), 9000)
    assert parse_bind("") == (default_host(), DEFAULT_PORT)
    with pytest.raises(ValueError):
        parse_bind("host:port")
    host = default_host()
    assert host == "127.0.0.1" or not host.startswith("127.")


def _read_until(stream, pattern: str, deadline: float) -> re.Match[str]:
    seen = ""
    while time.monotonic() < deadline:
        line = stream.readline()
        if not line:
            break
        seen += line
        match = re.search(pattern, seen)
        if match:
            return match
    raise AssertionError(f"{pattern!r} not printed; got:\n{seen}")


def test_demo_serves_the_replayed_samples_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path), "TMPDIR": str(scratch)}
    command = [sys.executable, "-m", "monitor.cli", "demo", "--speed", "0"]
    command += ["--bind", "127.0.0.1:0", "--home", "FR"]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        deadline = time.monotonic() + 60
        password = _read_until(process.stdout, r"password[^:]*: (\S+)", deadline).group(1)
        url = _read_until(process.stdout, r"Dashboard: (http://127\.0\.0\.1:\d+/)", deadline)[1]
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        page = opener.open(url + "login", timeout=10).read().decode()
        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        form = urllib.parse.urlencode({"password": password, "csrf_token": token}).encode()
        opener.open(url + "login", data=form, timeout=10)
        devices = ""
        while time.monotonic() < deadline and "chuangmi" not in devices:
            devices = opener.open(url + "devices", timeout=10).read().decode()
            time.sleep(0.2)
        assert "chuangmi" in devices and "D-Link DCS-935L" in devices and "Amazon" in devices
        about = opener.open(url + "about", timeout=10).read().decode()
        assert "IoT Sentinel" in about
        process.send_signal(signal.SIGINT)
        assert process.wait(30) == 0
        assert not list(scratch.glob("micwatch-demo-*")), "the temporary database is removed"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
