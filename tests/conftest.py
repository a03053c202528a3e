"""Shared test fixtures.

Prerequisites: in CI (``CI=true``) a missing tool or service is a failure, never a skip;
elsewhere the test is skipped with the reason.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"
IN_CI = os.environ.get("CI", "").lower() == "true"


def require(condition: bool, reason: str) -> None:
    """Fail in CI, skip elsewhere, when a prerequisite is missing."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"missing prerequisite in CI: {reason}")
    pytest.skip(reason)


def require_tool(name: str) -> str:
    """The path of an external program (tshark, tcpdump, ip...), or fail/skip."""
    path = shutil.which(name)
    require(path is not None, f"{name} is not installed")
    return path  # type: ignore[return-value]


def require_root() -> None:
    require(os.geteuid() == 0, "needs root (network namespaces, live capture)")


@pytest.fixture
def data_dir() -> Path:
    return DATA
