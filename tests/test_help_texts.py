"""Every ``nape <word>`` a help text or a user-facing message names is a command that exists.

Walks ``nape --help`` and every subcommand's ``--help`` (descriptions, epilogs, option
help), and the string literals of the host package (messages printed to users), for
``nape WORD`` mentions, and checks WORD against the parser's own list of commands.
"""

from __future__ import annotations

import argparse
import ast
import re
from pathlib import Path

import nape
from nape.cli import build_parser

# a command mention: quoted (`nape X`, ``nape X``), an example line starting with it, or
# an instruction ("run nape X", "see nape X"); "the .nape header" or "nape raises" are prose
_MENTION = re.compile(r"(?:`{1,2}|^[ \t]*(?:\$ )?|\b(?:run|use|try|see|with|then|or)[ \t]+)"
                      r"nape ([a-z][a-z-]*[a-z])\b", re.M)


def _commands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _mentions(text: str) -> set[str]:
    return {m.group(1) for m in _MENTION.finditer(text)}


def test_help_texts_name_only_existing_commands():
    parser = build_parser()
    commands = _commands(parser)
    assert {"record", "pair", "scan", "flash", "rom", "demo"} <= set(commands)
    texts = {"nape --help": parser.format_help()}
    texts.update({f"nape {name} --help": sub.format_help() for name, sub in commands.items()})
    bad = {where: sorted(_mentions(t) - set(commands)) for where, t in texts.items()}
    bad = {k: v for k, v in bad.items() if v}
    assert not bad, f"help texts name commands that do not exist: {bad}"


def test_messages_in_the_host_package_name_only_existing_commands():
    commands = set(_commands(build_parser()))
    root = Path(nape.__file__).parent
    bad = []
    for path in sorted(root.rglob("*.py")):
        if "boardsim" in path.parts or "firmware" in path.parts:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                for word in _mentions(node.value) - commands:
                    bad.append(f"{path.relative_to(root)}:{node.lineno}: nape {word}")
    assert not bad, "messages name commands that do not exist:\n" + "\n".join(bad)


def test_the_check_catches_a_missing_command():
    assert _mentions("run nape virtual-device, then `nape pair`") == {"virtual-device", "pair"}
