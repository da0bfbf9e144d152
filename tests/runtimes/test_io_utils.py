import os
import stat

import pytest

from dehazekit.runtimes.io_utils import atomic_path, atomic_write_text


def test_atomic_write_creates_file_with_umask_permissions(tmp_path):
    path = atomic_write_text(tmp_path / "sub" / "a.json", "{}")
    assert path.read_text() == "{}"
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask


def test_failure_leaves_no_partial_file_and_keeps_old_content(tmp_path):
    target = tmp_path / "out.mp4"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            assert tmp.suffix == ".mp4" and tmp.parent == tmp_path
            tmp.write_text("half")
            raise RuntimeError("encoder died")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]
