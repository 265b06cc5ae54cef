"""Docs that cannot drift from the CLI: every ``untwine ...`` command line in README.md and docs/*.md
(in fenced code blocks and in inline code) parses with the CLI's own parser, and every flag named
alone in inline code (```--jobs N```) is a flag of some ``untwine`` command.

Placeholders are fine: a positional such as ``RUN_DIR`` or ``STUDY.toml``, an upper-case value of a
number flag (``--jobs N``), ``...`` for flags left out, ``[--source toy]`` for an optional part,
``a|b`` for alternatives. A line that names a command without its required arguments
(```untwine evaluate```) passes; a flag that does not exist, a wrong value for a flag with choices,
an unknown command or an abbreviated flag fails.
"""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import pytest

from untwine.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PLACEHOLDER = re.compile(r"[A-Z][A-Z0-9_]*")
ENV = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=\S*")


def _inline(line: str) -> list[str]:
    return re.findall(r"(?<!`)`([^`]+)`(?!`)", line)


def mentions() -> list[tuple[str, str, str]]:
    """``(where, kind, text)``: kind ``"command"`` for an ``untwine ...`` line, ``"flag"`` for an
    inline ```--flag ...``` of its own."""
    out = []
    for path in DOCS:
        fenced, pending = False, ""
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            where = f"{path.relative_to(ROOT)}:{i}"
            if line.lstrip().startswith(("```", "~~~")):
                fenced, pending = not fenced, ""
                continue
            if fenced:
                text = pending + line.strip()
                if text.endswith("\\"):  # a continued command line
                    pending = text[:-1] + " "
                    continue
                pending = ""
                text = text[2:] if text.startswith("$ ") else text
                words = text.split()
                while words and ENV.fullmatch(words[0]):  # VAR=value untwine ...
                    words.pop(0)
                if words and words[0].rsplit("/", 1)[-1] == "untwine" and not (len(words) > 1 and words[1].endswith(":")):
                    out.append((where, "command", text[text.index(words[0]):]))
                continue
            for span in _inline(line):
                span = span.strip()
                words = span.split()
                if words and words[0] == "untwine" and not (len(words) > 1 and words[1].endswith(":")):  # not output
                    out.append((where, "command", span))
                elif span.startswith("--"):
                    out.append((where, "flag", span))
    return out


class ParseError(Exception):
    pass


def _parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    out = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                out += _parsers(sub)
    return out


@pytest.fixture(scope="module")
def cli(request):
    """The CLI's parser, made to raise on an error, to accept a line without its required
    arguments and to take no abbreviated flag."""
    parser = build_parser()
    parsers = _parsers(parser)

    def error(self, message):
        raise ParseError(message)

    for p in parsers:
        p.allow_abbrev = False
        p.error = error.__get__(p)  # type: ignore[method-assign]
        for a in p._actions:
            a.required = False
    return parser, parsers


def _tokens(text: str) -> list[str]:
    words = shlex.split(text, comments=True)
    out = []
    for w in words:
        w = w.strip("[]") if w.startswith("[") or w.endswith("]") and "[" not in w else w
        if w and w not in ("...", "…"):
            out.append(w)
    return out


def _parser_of(parser: argparse.ArgumentParser, args: list[str]) -> argparse.ArgumentParser:
    """The (sub)parser the words ``args`` end in (``data prepare ...`` -> ``untwine data prepare``)."""
    for a in args:
        subs = [x for x in parser._actions if isinstance(x, argparse._SubParsersAction)]
        if not subs or a not in subs[0].choices:
            break
        parser = subs[0].choices[a]
    return parser


def _fill(parser: argparse.ArgumentParser, args: list[str]) -> list[str]:
    """Placeholder values of number flags -> 1; ``a|b`` values of flags with choices -> each
    alternative checked, the first kept."""
    p = _parser_of(parser, args)
    out = list(args)
    for i, a in enumerate(args[:-1]):
        action = p._option_string_actions.get(a)
        if action is None or action.nargs == 0:
            continue
        value = args[i + 1]
        if action.type in (int, float) and PLACEHOLDER.fullmatch(value):
            out[i + 1] = "1"
        elif action.choices is not None and "|" in value:
            bad = [v for v in value.split("|") if v not in action.choices]
            if bad:
                raise ParseError(f"{a}: {', '.join(bad)} not among {', '.join(map(str, action.choices))}")
            out[i + 1] = value.split("|")[0]
    return out


CASES = mentions()


def test_the_docs_have_command_lines_and_flags():
    kinds = [k for _, k, _ in CASES]
    assert kinds.count("command") > 40 and kinds.count("flag") > 40


@pytest.mark.parametrize("where,kind,text", CASES, ids=[f"{w} {t}" for w, _, t in CASES])
def test_doc_line_parses(cli, capsys, where, kind, text):
    parser, parsers = cli
    if kind == "flag":
        flag = text.split()[0]
        known = {s for p in parsers for s in p._option_string_actions}
        assert flag in known, f"{where}: {flag} is not a flag of any untwine command"
        return
    args = _tokens(text)[1:]
    try:
        parser.parse_args(_fill(parser, args))
    except ParseError as e:
        pytest.fail(f"{where}: `{text}` does not parse: {e}")
    except SystemExit as e:  # --help, --version
        assert e.code in (0, None), f"{where}: `{text}` exits with {e.code}"


def test_a_wrong_flag_fails(cli):
    parser, _ = cli
    with pytest.raises(ParseError, match="unrecognized arguments: --hparam"):
        parser.parse_args(_fill(parser, _tokens("untwine train --hparam beta=4")[1:]))
    with pytest.raises(ParseError, match="invalid choice"):
        parser.parse_args(_tokens("untwine fly")[1:])
    with pytest.raises(ParseError, match="unrecognized arguments: --jo 2"):
        parser.parse_args(_tokens("untwine sweep S.toml --out D --jo 2")[1:])


def test_pack_help_names_every_field_a_pack_shares():
    from untwine.train.packed import SHARED

    sweep = _parser_of(build_parser(), ["sweep"])
    (pack,) = [a for a in sweep._actions if "--pack" in a.option_strings]
    assert all(f in pack.help for f in SHARED) and "pairs" in pack.help
