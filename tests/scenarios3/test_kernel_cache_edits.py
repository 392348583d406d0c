"""An njit cost whose helper lives in another file, reached through a module alias: edit
the helper (inject a factor-2 bug) and a new process gives the new verdict, not the cached
kernel's."""

import pytest

from ._cachehelp import child, write


def test_helper_edited_through_a_module_alias_gives_the_new_verdict(tmp_path):
    src, cache = tmp_path / "src", tmp_path / "cache"
    write(src, "1.0")
    child(src, cache, "c_alias")
    first = child(src, cache, "c_alias")  # loads the kernel cached by the first process
    assert first["passed"] and first["backend"] == "numba"
    write(src, "2.0")
    second = child(src, cache, "c_alias")
    assert second["n0"] == pytest.approx(2 * first["n0"], rel=1e-9)
    assert not second["passed"]
