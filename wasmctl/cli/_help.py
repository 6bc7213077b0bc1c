"""`--help` as plain text, laid out as `gh` and `cosign` lay theirs out.

typer's rich panels show a type placeholder for every option (`<bool>` beside a plain flag,
`<str>` where an option takes one of a few words), cut long alias names short in a fixed
column, and keep a docstring's line breaks inside paragraphs. Here every command's help is
written from its parameters instead: a flag shows no value, an option with fixed choices
shows them (`[table|json|sarif]`), names are never cut (a long one puts its help on the next
line), prose paragraphs are re-wrapped to the width, and indented lines (the examples) are
kept exactly as written, one per line. Rendering it needs no rich, which keeps `--help` fast.
"""

from __future__ import annotations

import enum
import inspect
import textwrap
from collections.abc import Iterator, Sequence
from typing import Any

from typer import _click as click
from typer.core import TyperCommand, TyperGroup

COLUMN_MAX = 30  # a longer name (verify's cosign-style aliases) puts its help on the next line


def choices_metavar(values: Sequence[object]) -> str:
    """How an option with fixed choices shows them: `[table|json|sarif]`."""
    return "[" + "|".join(_choice_text(v) for v in values) + "]"


class HelpCommand(TyperCommand):
    """A command whose `--help` is written by `write_help`."""

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        write_help(self, ctx, formatter)

    def collect_usage_pieces(self, ctx: click.Context) -> list[str]:
        return usage_pieces(self, ctx)


class HelpGroup(TyperGroup):
    """A group of commands whose `--help` is written by `write_help`."""

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        write_help(self, ctx, formatter)

    def collect_usage_pieces(self, ctx: click.Context) -> list[str]:
        return usage_pieces(self, ctx)


def usage_pieces(command: Any, ctx: click.Context) -> list[str]:
    """`[OPTIONS] TARGET...`: arguments by their names, optional ones in brackets."""
    params = [p for p in command.get_params(ctx) if not getattr(p, "hidden", False)]
    pieces = ["[OPTIONS]"] if any(p.param_type_name == "option" for p in params) else []
    pieces += [_usage_name(p) for p in params if p.param_type_name == "argument"]
    if getattr(command, "list_commands", None) is not None:
        pieces.append("COMMAND [ARGS]...")
    return pieces


def write_help(command: Any, ctx: click.Context, formatter: click.HelpFormatter) -> None:
    """Usage, description, arguments, options, commands (for a group) and the epilog."""
    params = [p for p in command.get_params(ctx) if not getattr(p, "hidden", False)]
    arguments = [p for p in params if p.param_type_name == "argument"]
    options = [p for p in params if p.param_type_name == "option"]
    commands = _commands(command, ctx)

    formatter.write_usage(ctx.command_path, " ".join(usage_pieces(command, ctx)))

    if command.help:
        formatter.write_paragraph()
        with formatter.indentation():
            _write_prose(formatter, command.help)

    rows = [(_argument_name(p), _help_of(p)) for p in arguments if p.help]
    if rows:
        with formatter.section("Arguments"):
            _write_rows(formatter, rows)
    if options:
        with formatter.section("Options"):
            _write_rows(formatter, [_option_row(p) for p in options])
    if commands:
        with formatter.section("Commands"):
            _write_rows(formatter, commands)
    if command.epilog:
        formatter.write_paragraph()
        _write_prose(formatter, command.epilog)


def _commands(command: Any, ctx: click.Context) -> list[tuple[str, str]]:
    list_commands = getattr(command, "list_commands", None)
    if list_commands is None:
        return []
    rows = []
    for name in list_commands(ctx):
        sub = command.get_command(ctx, name)
        if sub is None or getattr(sub, "hidden", False):
            continue
        first = next(_paragraphs(sub.short_help or sub.help or ""), (False, []))
        rows.append((name, " ".join(first[1])))
    return rows


def _usage_name(argument: Any) -> str:
    name = _argument_name(argument)
    return name if argument.required else f"[{name}]"


def _argument_name(argument: Any) -> str:
    name = str(argument.metavar or argument.name.upper())
    return f"{name}..." if argument.nargs == -1 else name


def _option_row(option: Any) -> tuple[str, str]:
    short = [o for o in option.opts if not o.startswith("--")]
    long = [o for o in option.opts if o.startswith("--")]
    names = ", ".join([*short, *long, *option.secondary_opts])
    if not short:
        names = "    " + names  # long names line up whether or not there is a short one
    value = _value_name(option)
    return (f"{names} {value}" if value else names), _help_of(option)


def _value_name(option: Any) -> str | None:
    """What the option takes: nothing for a flag; its choices; its metavar; its name."""
    if getattr(option, "is_flag", False) or getattr(option, "count", False):
        return None
    if option.metavar:
        return str(option.metavar)
    choices = _choices(option)
    if choices:
        return choices_metavar(choices)
    return str(option.name).upper()


def _choices(param: Any) -> Sequence[object]:
    """The fixed choices typer knows of (an Enum annotation); click's Choice, in older typer."""
    for holder in (getattr(param, "type_descriptor", None), getattr(param, "type", None)):
        choices = getattr(holder, "choices", None)
        if choices:
            return tuple(choices)
    return ()


def _choice_text(value: object) -> str:
    return str(value.value) if isinstance(value, enum.Enum) else str(value)


def _help_of(param: Any) -> str:
    text = " ".join(inspect.cleandoc(param.help or "").split())
    extra = []
    default = _default_text(param)
    if default is not None:
        extra.append(f"default: {default}")
    limits = _range_text(getattr(param, "min", None), getattr(param, "max", None))
    if limits:
        extra.append(limits)
    if param.required:
        extra.append("required")
    if extra:
        text = f"{text} [{'; '.join(extra)}]".strip()
    return text


def _default_text(param: Any) -> str | None:
    show = getattr(param, "show_default", None)
    if isinstance(show, str):
        return show
    if show is False or getattr(param, "is_flag", False) or param.param_type_name != "option":
        return None
    default = param.default
    if default is None or default == () or default == [] or callable(default):
        return None
    return _choice_text(default)


def _range_text(low: object, high: object) -> str | None:
    if low is not None and high is not None:
        return f"{low} to {high}"
    if low is not None:
        return f"at least {low}"
    if high is not None:
        return f"at most {high}"
    return None


def _write_prose(formatter: click.HelpFormatter, text: str) -> None:
    """Paragraphs re-wrapped to the width; indented lines (examples) kept as written; a
    one-line paragraph ending in `:` as a heading."""
    first = True
    for verbatim, lines in _paragraphs(text):
        if not first:
            formatter.write("\n")
        first = False
        if verbatim:
            indent = min(len(line) - len(line.lstrip()) for line in lines if line.strip())
            for line in lines:
                formatter.write(" " * formatter.current_indent + "  " + line[indent:] + "\n")
        elif len(lines) == 1 and lines[0].endswith(":"):
            formatter.write(" " * formatter.current_indent + lines[0] + "\n")
        else:
            _write_wrapped(formatter, " ".join(lines), formatter.current_indent)


def _write_rows(formatter: click.HelpFormatter, rows: Sequence[tuple[str, str]]) -> None:
    """Names and their help in two columns; a name longer than COLUMN_MAX has its help on
    the lines below it, so no name is ever cut."""
    indent = formatter.current_indent
    column = min(max(len(name) for name, _ in rows), COLUMN_MAX) + 2
    for name, text in rows:
        lead = " " * indent + name
        if len(name) > COLUMN_MAX or not text:
            formatter.write(lead + "\n")
            if text:
                _write_wrapped(formatter, text, indent + column)
            continue
        lines = _wrap(text, formatter.width - indent - column) or [""]
        formatter.write(lead.ljust(indent + column) + lines[0] + "\n")
        for line in lines[1:]:
            formatter.write(" " * (indent + column) + line + "\n")


def _write_wrapped(formatter: click.HelpFormatter, text: str, indent: int) -> None:
    for line in _wrap(text, formatter.width - indent):
        formatter.write(" " * indent + line + "\n")


def _wrap(text: str, width: int) -> list[str]:
    """Words never split, at a hyphen (`oci-archive:`) or anywhere else."""
    return textwrap.wrap(text, max(width, 20), break_on_hyphens=False, break_long_words=False)


def _paragraphs(text: str) -> Iterator[tuple[bool, list[str]]]:
    """(verbatim, lines) for each blank-line-separated paragraph; verbatim when every line
    is indented."""
    text = inspect.cleandoc(text.split("\f", 1)[0])
    lines: list[str] = []
    for line in [*text.splitlines(), ""]:
        if line.strip():
            lines.append(line.rstrip())
            continue
        if lines:
            verbatim = all(line[:1].isspace() for line in lines)
            yield verbatim, (lines if verbatim else [line.strip() for line in lines])
            lines = []
