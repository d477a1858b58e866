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


MCP_HUB = str(ROOT / ".venv" / "bin" / "mcp-hub")


def seed(data_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([MCP_HUB, "server", "all", "--seed-only", "--data-dir", str(data_dir)],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "MCP_HUB_DATA_DIR": str(data_dir), **env})


def counts(data_dir: Path, skip: set[str] | None = None) -> dict[tuple[str, str], int]:
    out = {}
    for store, table in COUNTED:
        if store in (skip or set()):
            continue
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


def test_runs_at_once_seed_each_domain_once(tmp_path: Path) -> None:
    """Outside review r35 #3: three runs at once doubled the calendar's demo (each found it empty)."""
    env = {**os.environ, "MCP_HUB_DATA_DIR": str(tmp_path)}
    runs = [subprocess.Popen([MCP_HUB, "server", "all", "--seed-only", "--data-dir", str(tmp_path)], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    for run in runs:
        assert run.wait(timeout=300) == 0, run.stderr.read() if run.stderr else ""
        if run.stderr:
            run.stderr.close()
    alone = tmp_path / "alone"
    assert seed(alone).returncode == 0
    assert counts(tmp_path) == counts(alone), (counts(tmp_path), counts(alone))


def test_a_domain_on_a_provider_is_skipped_and_the_rest_seeded(tmp_path: Path) -> None:
    """Outside review r35 #4: with CALENDAR_BACKEND=google (no Google credentials) the command stopped at calendar, so
    HRIS and ticketing were never seeded."""
    done = seed(tmp_path, CALENDAR_BACKEND="google")
    assert done.returncode == 0 and "calendar: uses its google backend, not seeded" in done.stderr, done.stderr[-2000:]
    assert not (tmp_path / "calendar.sqlite").exists()
    seeded = {key: n for key, n in counts(tmp_path, skip={"calendar"}).items()}
    assert all(n > 0 for n in seeded.values()), seeded
    one = subprocess.run([MCP_HUB, "server", "calendar", "--seed-only", "--data-dir", str(tmp_path)], capture_output=True,
                         text=True, timeout=120, env={**os.environ, "CALENDAR_BACKEND": "google"})
    assert one.returncode == 2 and "--backend embedded" in one.stderr and "--demo" not in one.stderr, one.stderr[-1000:]


def test_a_backend_that_is_no_provider_or_a_file_for_a_data_dir_is_a_clear_refusal(tmp_path: Path) -> None:
    """Outside review r36 #3 and #5: `all --backend jira` skipped every domain and exited 0, a typo in
    CALENDAR_BACKEND read as a provider, and a data dir that is a file ended in a traceback."""
    jira = subprocess.run([MCP_HUB, "server", "all", "--seed-only", "--backend", "jira", "--data-dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert jira.returncode == 2 and "leave --backend out" in jira.stderr, jira.stderr[-1000:]
    typo = seed(tmp_path, CALENDAR_BACKEND="gogle")
    assert typo.returncode == 2 and "unknown calendar backend 'gogle'" in typo.stderr, typo.stderr[-1000:]
    assert not list(tmp_path.glob("*.sqlite")), list(tmp_path.iterdir())  # nothing seeded before the refusal (r37 #2)
    caps = subprocess.run([MCP_HUB, "server", "all", "--seed-only", "--backend", "EMBEDDED", "--data-dir", str(tmp_path / "c")],
                          capture_output=True, text=True, timeout=300)
    assert caps.returncode == 0, caps.stderr[-1000:]
    afile = tmp_path / "a-file"
    afile.write_text("x")
    broken = seed(afile)
    assert broken.returncode == 2 and "cannot use the data dir" in broken.stderr and "Traceback" not in broken.stderr, \
        broken.stderr[-1000:]
