"""The command line: exit codes 0 / 1 / 2, as a user runs it."""

import json
import subprocess
import sys

import pytest

from fastcheck.cli import main


def test_demo_passes(capsys):
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "PASS" in out and "W1" in out


def test_demo_bug_fails_and_names_w_blocks(capsys):
    assert main(["demo", "--bug", "missing-regularization"]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out
    assert "failing blocks: W1, W2, W3" in out


def test_demo_json(capsys):
    assert main(["demo", "--sample", "40", "--seed", "2", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["n_checked"] == 40 and data["seed"] == 2 and data["passed"] is True


@pytest.mark.parametrize("argv", [
    ["demo", "--sample", "0"],
    ["demo", "--sample", "abc"],
    ["demo", "--sample", "100000"],
    ["demo", "--bug", "nope"],
    ["demo", "--threads", "0"],
    ["demo", "--eps", "-1"],
    ["demo", "--size", "XL"],
    ["frobnicate"],
    [],
])
def test_usage_errors_exit_2(argv, capsys):
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err


def test_help_lists_bug_names(capsys):
    with pytest.raises(SystemExit) as info:
        main(["demo", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for bug in ("missing-regularization", "bias-factor-2", "sign-flip", "one-element",
                "transposed", "wrong-relu-mask"):
        assert bug in out


def test_python_dash_m_and_console_script():
    proc = subprocess.run([sys.executable, "-m", "fastcheck", "demo", "--bug", "sign-flip"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr
    assert "W2" in proc.stdout


def test_demo_plot_saves_png(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    path = tmp_path / "report.png"
    assert main(["demo", "--bug", "clipped", "--plot", str(path)]) == 1
    assert path.stat().st_size > 10_000
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_demo_directional_mode_names_block(capsys):
    assert main(["demo", "--mode", "directional", "--bug", "sign-flip"]) == 1
    out = capsys.readouterr().out
    assert "failing blocks: W2" in out and "directional" in out


@pytest.mark.parametrize(("argv", "code"), [(["taylor"], 0), (["taylor", "--bug", "sign-flip"], 1),
                                            (["taylor", "--bug", "nope"], 2)])
def test_taylor_command_exit_codes(argv, code, capsys):
    assert main(argv) == code


@pytest.mark.parametrize("method", ["richardson", "complex"])
def test_demo_methods_locate_the_one_element_bug(method, capsys):
    assert main(["demo", "--method", method, "--bug", "one-element"]) == 1
    out = capsys.readouterr().out
    assert "W2[1, 3]" in out


def _subparser(name):
    from fastcheck.cli import build_parser

    parser = build_parser()
    (sub,) = [a for a in parser._actions if a.dest == "command"]
    return sub.choices[name]


@pytest.mark.parametrize("command", ["demo", "check"])
def test_backend_choices_are_the_registered_backends(command, monkeypatch):
    from fastcheck import backends

    (action,) = [a for a in _subparser(command)._actions if a.dest == "backend"]
    assert tuple(action.choices) == backends.BACKEND_NAMES
    assert "auto" in action.choices and "dask" in action.choices


@pytest.mark.parametrize(("argv", "expected"), [
    (["demo", "--bug", "nope"], "bug must be one of 'missing-regularization'"),
    (["taylor", "--bug", "nope"], "bug must be one of"),
    (["demo", "--backend", "gpu"], "backend must be one of 'auto'"),
    (["demo", "--sample", "-3"], "--sample: must be positive"),
    (["demo", "--eps", "abc"], 'expected "auto" or a float'),
    (["frobnicate"], "invalid choice"),
])
def test_usage_errors_are_one_line_and_returned(argv, expected, capsys):
    assert main(argv) == 2  # returned, not raised: the console script and tests agree
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1, err
    assert err.startswith("fastcheck") and "error: " in err and expected in err


def test_sample_auto_is_accepted_by_demo(capsys):
    assert main(["demo", "--sample", "auto", "--seed", "0", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["passed"] is True and data["n_checked"] >= 4  # at least one per block
