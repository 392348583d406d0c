"""The README's Python examples run as written."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_python_examples():
    assert len(BLOCKS) >= 2


def test_readme_examples_run_in_order(capsys):
    namespace: dict = {"__name__": "readme"}
    for block in BLOCKS:
        exec(compile(block, str(README), "exec"), namespace)  # noqa: S102
    out = capsys.readouterr().out
    assert "PASS" in out


@pytest.mark.parametrize("command", ["make demo", "make test"])
def test_readme_opens_with_the_two_commands(command):
    head = README.read_text().split("##")[0]
    assert command in head
