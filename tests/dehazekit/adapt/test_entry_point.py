"""`dehazekit.adapt(...)` works however the package was imported first."""

from __future__ import annotations

from pathlib import Path

import pytest

from dehazekit.runtimes.errors import ConfigError


def test_dehazekit_adapt_is_callable_after_submodule_import(hazy_dir: Path, tmp_path: Path) -> None:
    import dehazekit
    from dehazekit.adapt import AdaptConfig  # binds dehazekit.adapt to the package

    assert callable(dehazekit.adapt) and dehazekit.AdaptConfig is AdaptConfig
    for _ in range(2):  # the call reaches adapt(): K > 7 candidates of tiny-gunet is refused up front
        with pytest.raises(ConfigError, match="top-k"):
            dehazekit.adapt(
                hazy_dir,
                "tiny-gunet",
                AdaptConfig(objective="dcp", weights="random", top_k=99, size=32, out=str(tmp_path / "out")),
            )
