"""The command registry and the one flag parser: every command has its module, summary and run; a command's
own options are scanned the same way everywhere; ``ppox --help`` imports nothing heavy."""

import importlib
import subprocess
import sys

import pytest

from ppox.cli import COMMANDS, usage
from ppox.cli.flags import FlagError, Option, options_usage, scan, value_of


def test_every_command_is_a_module_with_a_summary_and_a_run_listed_in_the_usage():
    text = usage()
    for name, module in COMMANDS.items():
        command = importlib.import_module(module)
        assert callable(command.run) and command.SUMMARY in text
        assert f"\n  {name} " in text


def test_help_imports_nothing_heavy():
    code = ("import sys; from ppox.cli import main; main(['--help']); "
            "print(sorted(m for m in ('jax', 'gymnax', 'matplotlib') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip().endswith("[]"), done.stdout + done.stderr


OPTIONS = {"out": Option("where", "DIR"), "seeds": Option("how many", "N", needs="a count"), "grid": Option("all")}


def test_scan_finds_values_and_switches_and_keeps_the_rest_in_order():
    found, rest = scan(["--out=a", "x", "--grid", "--lr", "3", "--seeds", "-2", "--out", "b", "--grid=1"],
                       OPTIONS.get)
    assert found == {"out": "b", "grid": True, "seeds": "-2"}  # (the last of a repeated option wins)
    assert rest == ["x", "--lr", "3", "--grid=1"]  # (a switch takes no value)


@pytest.mark.parametrize("args", [["--seeds"], ["--seeds", "--grid"]])
def test_a_missing_value_is_one_line_naming_the_option(args):
    with pytest.raises(FlagError, match="^--seeds needs a count$"):
        scan(args, OPTIONS.get)


def test_value_of_reads_the_first_value_and_leaves_the_args():
    args = ["--lr", "1", "--env", "A", "--env=B"]
    assert value_of(args, "env") == "A" and value_of(args, "seed") is None and value_of(["--env"], "env") is None


def test_the_usage_of_options_is_built_from_their_specs():
    assert options_usage(OPTIONS).splitlines() == [
        "  --out DIR           where", "  --seeds N           how many", "  --grid              all"]
    from ppox.cli import sweep, tune

    for command in (sweep, tune):
        assert all(f"  --{name} " in command.USAGE for name in command.OPTIONS)
