"""runtimes must import (and later, infer) with torch unimportable: a camera pipeline embeds it alone."""
import subprocess
import sys
import textwrap

from tests.conftest import REPO


def run_blocked(code: str) -> subprocess.CompletedProcess:
    prelude = "import sys\nsys.modules['torch'] = None\n"
    return subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def test_runtimes_imports_with_torch_blocked():
    proc = run_blocked("""
        import runtimes, runtimes.errors, runtimes.meta, runtimes.io_utils
        assert 'torch' not in [m for m in sys.modules if sys.modules[m] is not None and m == 'torch']
        meta = runtimes.ModelMeta(backbone='gunet-t', pad_multiple=16)
        print(meta.pad_multiple)
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "16"


def test_blocking_really_blocks_torch():
    proc = run_blocked("import torch")
    assert proc.returncode != 0 and "ModuleNotFoundError" in proc.stderr
