"""A small real file system to fill up (issue 15.7): a tmpfs mounted for one test and unmounted
after it; the test is skipped, with the reason, where mounting is not permitted (not root)."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

FS_SIZE = "24m"  # the SQLite bus's log and WAL grow fast: small enough to fill, big enough to start


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "small"
    mount.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command here")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={FS_SIZE}", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs (needs root or CAP_SYS_ADMIN): {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(mount: Path, leave_kb: int) -> Path:
    """A file that takes all but ``leave_kb`` of the file system's free space (all of it for 0)."""
    filler = mount / "filler"
    st = os.statvfs(mount)
    free_kb = st.f_bavail * st.f_frsize // 1024
    try:
        with filler.open("wb") as f:
            f.write(b"\0" * max(0, free_kb - leave_kb) * 1024)
            if leave_kb == 0:
                while True:
                    f.write(b"\0" * 4096)
                    f.flush()
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
    return filler
