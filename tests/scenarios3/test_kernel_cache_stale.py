"""An edited helper or constant the njit cost reaches gets a new kernel: fuzz3 found the
cached kernel kept running, with the old verdict (``_kernel_cache._reached``)."""

import pytest

from ._cachehelp import child, write


@pytest.mark.parametrize("module", ["c_pkgattr", "c_const", "c_vec", "c_rj"])
def test_edit_outside_the_cost_file_gives_the_new_verdict(tmp_path, module):
    src, cache = tmp_path / "src", tmp_path / "cache"
    write(src, "1.0")
    first = child(src, cache, module)
    first = child(src, cache, module)  # the second process loads the cached kernel
    assert first["passed"] and first["backend"] == "numba"
    write(src, "2.0")  # the helper (or constant) now doubles the cost: a factor-2 bug
    second = child(src, cache, module)
    assert second["n0"] == pytest.approx(2 * first["n0"], rel=1e-9), "stale kernel"
    assert not second["passed"]
