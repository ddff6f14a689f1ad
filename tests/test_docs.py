"""Every command has help with examples and is documented in the README (sqlite-utils' test_docs idea)."""

from __future__ import annotations

from pathlib import Path

import click
import pytest

from cli import cli

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


def all_commands() -> list[tuple[str, click.Command]]:
    found: list[tuple[str, click.Command]] = []

    def walk(prefix: str, group: click.Group) -> None:
        for name, command in group.commands.items():
            full = f"{prefix} {name}".strip()
            if isinstance(command, click.Group):
                walk(full, command)
            else:
                found.append((full, command))

    walk("", cli)
    return found


@pytest.mark.parametrize(("name", "command"), all_commands(), ids=[n for n, _ in all_commands()])
def test_command_has_help_with_examples_and_is_in_readme(name: str, command: click.Command) -> None:
    assert command.help and command.help.strip(), name
    assert "Examples:" in command.help, name
    assert f"evidence {name}" in README, name


def test_readme_starts_with_the_two_setup_commands() -> None:
    head = README.splitlines()[:8]
    assert any(line.startswith("make demo") for line in head)
    assert any(line.startswith("make test") for line in head)
