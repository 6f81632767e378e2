"""MkDocs hooks: the options page's tables are made from `pytest_distill.settings.OPTIONS` at every build,
and a page that the nav of mkdocs.yml does not list yet is put under "More" rather than left unreachable.

The options page holds the prose; `{{ options }}` in it becomes one table per group of `pytest --help`, so
a flag, an ini name or a default is written once, in settings.py, and never drifts here.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pytest_distill.settings import GROUPS, OPTIONS, Option

PLACEHOLDER = "{{ options }}"
DEFAULT_IN_HELP = re.compile(r"\s*\(default: ([^)]*(?:\([^)]*\)[^)]*)*)\)")


def flags(opt: Option) -> str:
    """`--flag METAVAR` for the flag and each spelling, as typed on the command line."""
    if not opt.flag:
        return ""
    names = (opt.flag, *opt.spellings)
    if opt.action == "store_true":
        shown = [f"`{name}`" for name in names]
    elif opt.action == "optional":
        shown = [f"`{name}`, `{name}={opt.shown_metavar}`" for name in names]
    else:
        shown = [f"`{name} {opt.shown_metavar}`" for name in names]
    repeat = " (repeatable)" if opt.action == "append" else ""
    return (", ".join(shown) + repeat).replace("|", "\\|")


def default(opt: Option) -> str:
    """The default as `pytest --help` says it, one table cell."""
    found = DEFAULT_IN_HELP.search(opt.help)
    if found:
        return found.group(1)
    value: Any = opt.default
    if value is None or value == ():
        return "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"`{value:g}`"
    if "\n" in str(value):
        return "<br>".join(f"`{line}`" for line in str(value).splitlines())
    return f"`{value}`"


def meaning(opt: Option) -> str:
    text = DEFAULT_IN_HELP.sub("", opt.help)
    return text.replace("|", "\\|")


def ini(opt: Option) -> str:
    return f"`{opt.ini}` ({opt.ini_type})" if opt.ini else ""


def tables() -> str:
    """One Markdown table per option group, in the order of `pytest --help`."""
    out = []
    for key, title in GROUPS.items():
        rows = [opt for opt in OPTIONS if opt.group == key]
        if not rows:
            continue
        out.append(f"## {title.removeprefix('distill: ').capitalize()}\n")
        out.append("| option | ini setting (type) | default | meaning |\n|---|---|---|---|")
        out.extend(f"| {flags(opt)} | {ini(opt)} | {default(opt)} | {meaning(opt)} |" for opt in rows)
        out.append("")
    return "\n".join(out)


def listed(nav: Any) -> set[str]:
    """Every page path the nav names, at any depth."""
    if isinstance(nav, str):
        return {nav}
    if isinstance(nav, dict):
        return {path for value in nav.values() for path in listed(value)}
    if isinstance(nav, list):
        return {path for entry in nav for path in listed(entry)}
    return set()


def title_of(page: Path) -> str:
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return page.stem.replace("-", " ").capitalize()


def on_config(config: Any, **_: Any) -> Any:
    """Pages written in docs/ but not yet in the nav go under "More", each by its first heading."""
    docs = Path(config["docs_dir"])
    named = listed(config["nav"])
    missing = sorted(path.relative_to(docs).as_posix() for path in docs.rglob("*.md")
                     if path.relative_to(docs).parts[0] != "hooks")
    more = [{title_of(docs / path): path} for path in missing if path not in named]
    if more:
        config["nav"].append({"More": more})
    return config


def on_page_markdown(markdown: str, page: Any, **_: Any) -> str:
    if Path(page.file.src_uri).name == "options.md":
        return markdown.replace(PLACEHOLDER, tables())
    return markdown
