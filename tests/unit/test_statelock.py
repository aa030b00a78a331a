"""The state lock: one bridge per state folder, and CLI writes that hold it only when no bridge does."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bridge.errors import ConfigurationError
from bridge.statelock import lock_state, lock_unless_running, try_lock_state

REPO = Path(__file__).resolve().parents[2]


def test_a_second_holder_is_refused_until_the_first_lets_go(tmp_path):
    first = lock_state(tmp_path / "state")  # creates the folder
    with pytest.raises(ConfigurationError, match="in use by another running bridge"):
        lock_state(tmp_path / "state")
    assert try_lock_state(tmp_path / "state") is None
    first.close()
    lock_state(tmp_path / "state").close()


def test_the_cli_holds_the_lock_while_no_bridge_runs(tmp_path):
    with lock_unless_running(tmp_path) as exclusive:
        assert exclusive
        with pytest.raises(ConfigurationError):  # a bridge cannot start meanwhile
            lock_state(tmp_path)
    lock_state(tmp_path).close()  # released at the end of the block


def test_the_cli_sees_a_bridge_in_another_process(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys
            from bridge.statelock import lock_state
            handle = lock_state({str(tmp_path)!r})
            print("locked", flush=True)
            sys.stdin.read()
        """)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"  # type: ignore[union-attr]
        with lock_unless_running(tmp_path) as exclusive:
            assert not exclusive
    finally:
        holder.communicate("", timeout=10)
    with lock_unless_running(tmp_path) as exclusive:  # the holder exited: the lock is free again
        assert exclusive
