"""`mcp-hub server all --seed-only` (outside review user34 #4): on the README's defaults HRIS had no employee and
ticketing no user, and nothing a first-time user could find added any. Now one command gives every built-in domain its
demo data in the hub's data dir, and running it again changes nothing (accounting's sample company was doubled)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from pathlib import Path

from tests.conftest import ROOT

COUNTED = [("accounting", "contacts"), ("accounting", "invoices"), ("hris", "employees"), ("ticketing", "tickets"),
           ("calendar", "events"), ("memory", "memories"), ("memory", "documents")]


def seed(data_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(ROOT / ".venv" / "bin" / "mcp-hub"), "server", "all", "--seed-only", "--data-dir", str(data_dir)],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "MCP_HUB_DATA_DIR": str(data_dir)})


def counts(data_dir: Path) -> dict[tuple[str, str], int]:
    out = {}
    for store, table in COUNTED:
        with sqlite3.connect(data_dir / f"{store}.sqlite") as db:
            out[(store, table)] = db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    return out


def test_every_domain_gets_demo_data_once(tmp_path: Path) -> None:
    first = seed(tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    seeded = counts(tmp_path)
    assert all(n > 0 for n in seeded.values()), seeded
    again = seed(tmp_path)
    assert again.returncode == 0 and counts(tmp_path) == seeded, (again.stderr[-2000:], counts(tmp_path), seeded)
    served = subprocess.run([str(ROOT / ".venv" / "bin" / "mcp-hub"), "server", "all"], capture_output=True, text=True, timeout=120)
    assert served.returncode == 2 and "--seed-only" in served.stderr, served.stderr[-1000:]
