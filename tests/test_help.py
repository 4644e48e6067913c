"""Every command's ``--help``: each option has help that states its default, and examples
that parse as written."""

from __future__ import annotations

import argparse
import importlib
import shlex

import pytest

from affectlite.cli import COMMANDS, build_parser
from affectlite.options import finish


def parsers() -> list[tuple[str, argparse.ArgumentParser]]:
    found = []
    for name, (module, _) in COMMANDS.items():
        parser = build_parser(name, importlib.import_module(module))
        subcommands = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if subcommands:
            found += [(f"{name} {sub}", p) for sub, p in subcommands[0].choices.items()]
        else:
            found.append((name, parser))
    return found


PARSERS = parsers()


@pytest.mark.parametrize("name, parser", PARSERS, ids=[name for name, _ in PARSERS])
def test_every_option_has_help_with_its_default(name, parser):
    formatter = parser._get_formatter()
    for action in parser._actions:
        if action.help == argparse.SUPPRESS or isinstance(action, argparse._HelpAction):
            continue
        assert action.help, f"{name} {action.option_strings or action.dest}: no help"
        shown = formatter._get_help_string(action)
        flag = action.nargs == 0 and action.default is False
        if action.option_strings and not action.required and not flag:
            assert "default" in shown, f"{name} {action.option_strings}: {shown!r}"


@pytest.mark.parametrize("name, parser", PARSERS, ids=[name for name, _ in PARSERS])
def test_every_command_has_examples_that_parse(name, parser):
    assert "examples:\n" in (parser.epilog or ""), name
    examples = parser.epilog.split("examples:\n", 1)[1].splitlines()
    assert examples
    for example in examples:
        words = shlex.split(example)
        assert words[: 1 + name.count(" ") + 1] == ["affectlite", *name.split()], example
        top = build_parser(name.split()[0], importlib.import_module(COMMANDS[name.split()[0]][0]))
        args = top.parse_args(words[2:])
        finish(top, args)
