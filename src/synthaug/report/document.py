"""A report as sections of blocks, built once and written as Markdown and as a self-contained HTML page."""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

BlockKind = Literal["text", "warning", "note", "table", "image", "subheading", "code"]


@dataclass(frozen=True)
class Block:
    """text: a paragraph (inline **bold** and `code`); warning: a paragraph set apart; note: an italic line
    (where a table's numbers come from); table: a Markdown table; image: a PNG file, `text` its short alt
    text and `caption` its caption; subheading: a level-3 heading; code: a YAML listing, folded in HTML and
    replaced by its `caption` in Markdown."""

    kind: BlockKind
    text: str
    path: Path | None = None
    caption: str = ""


@dataclass(frozen=True)
class Section:
    heading: str
    blocks: tuple[Block, ...]


def text(value: str) -> Block:
    return Block("text", value)


def warning(value: str) -> Block:
    return Block("warning", value)


def note(value: str) -> Block:
    return Block("note", value)


def table(markdown: str) -> Block:
    return Block("table", markdown)


def image(path: Path, alt: str, caption: str = "") -> Block:
    return Block("image", alt, path, caption or alt)


def subheading(value: str) -> Block:
    return Block("subheading", value)


def code(value: str, caption: str) -> Block:
    return Block("code", value, caption=caption)


def image_path(block: Block) -> Path:
    if block.path is None:
        raise ValueError(f"image block {block.text!r} has no file")
    return block.path


def _markdown_block(block: Block, base: Path) -> str:
    if block.kind == "note":
        return f"_{block.text}_"
    if block.kind == "image":
        return f"![{block.text}]({image_path(block).relative_to(base).as_posix()})"
    if block.kind == "subheading":
        return f"### {block.text}"
    if block.kind == "code":
        return block.caption
    return block.text


def to_markdown(title: str, sections: list[Section], base: Path, lead: str = "") -> str:
    """The report as Markdown; image paths relative to `base` (the folder the .md file is written to); `lead`: an
    italic line under the title."""
    parts = [f"# {title}", *([f"_{lead}_"] if lead else [])]
    for section in sections:
        blocks = [_markdown_block(block, base) for block in section.blocks]
        parts.append("\n\n".join([f"## {section.heading}", *blocks]))
    return "\n\n".join(parts) + "\n"


def inline_html(value: str) -> str:
    """Escaped text with Markdown's **bold** and `code` as HTML."""
    escaped = html.escape(value)
    escaped = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", escaped)
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)


# A value followed by its interval: "0.3012 ± 0.0123 [0.2711, 0.3313]", "-0.1356 [-0.1702, -0.1010], ±0.0346",
# "0.50 − 0.17 = +0.33 [+0.12, +0.55]", "0.3200 ± 0.0283 [0.2946, 0.3454] (40 images)".
VALUE_AND_INTERVAL = re.compile(r"^(?P<value>[^\[\]]+?) (?P<interval>\[[^\]]+\].*)$")


def html_cell(cell: str) -> str:
    """A table cell: a value with an interval reads as the value on one line and the interval, in smaller type, on
    the next, neither broken; any other cell as its escaped text."""
    match = VALUE_AND_INTERVAL.match(cell)
    if match is None:
        return f"<td>{html.escape(cell)}</td>"
    value, interval = (html.escape(match[name]) for name in ("value", "interval"))
    return f'<td><span class="value">{value}</span><span class="interval">{interval}</span></td>'


def markdown_to_html_table(markdown: str) -> str:
    lines = [line.strip("|").split(" | ") for line in markdown.strip().splitlines()]
    header, body = lines[0], lines[2:]
    head = "".join(f"<th>{html.escape(cell.strip())}</th>" for cell in header)
    rows = "".join("<tr>" + "".join(html_cell(cell.strip()) for cell in row) + "</tr>" for row in body)
    # a table wider than the page scrolls inside its own box instead of squeezing its cells
    return f'<div class="table"><table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table></div>'


def embedded_image(path: Path, caption: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (
        f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


def _html_block(block: Block) -> str:
    if block.kind == "warning":
        return f'<p class="warning">{inline_html(block.text)}</p>'
    if block.kind == "note":
        return f"<p><em>{inline_html(block.text)}</em></p>"
    if block.kind == "table":
        return markdown_to_html_table(block.text)
    if block.kind == "image":
        return embedded_image(image_path(block), block.caption)
    if block.kind == "subheading":
        return f"<h3>{html.escape(block.text)}</h3>"
    if block.kind == "code":
        return f"<details><summary>{inline_html(block.caption)}</summary><pre>{html.escape(block.text)}</pre></details>"
    return f"<p>{inline_html(block.text)}</p>"


STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:1360px;margin:2em auto;padding:0 1em;color:#222}"
    "div.table{overflow-x:auto;margin:1em 0}table{border-collapse:collapse;font-size:.85em}"
    "th,td{border:1px solid #ccc;padding:3px 6px;text-align:right;vertical-align:top}"
    "th{background:#f3f3f3;font-weight:600;min-width:5em}td:first-child,td:nth-child(2){text-align:left}"
    ".value,.interval{display:block;white-space:nowrap}.interval{font-size:.85em;color:#555}img{max-width:100%}"
    ".warning{background:#fff4e5;border-left:4px solid #e69500;padding:.5em 1em}"
    "figure{margin:1em 0}figcaption{font-size:.85em;color:#555}pre{background:#f6f6f6;padding:1em;overflow:auto}"
)


def to_html(title: str, sections: list[Section], lead: str = "") -> str:
    """The report as one HTML page that loads nothing from elsewhere (figures are embedded)."""
    intro = f"<p><em>{inline_html(lead)}</em></p>" if lead else ""
    body = "".join(
        f"<h2>{html.escape(section.heading)}</h2>" + "".join(_html_block(block) for block in section.blocks)
        for section in sections
    )
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>{intro}{body}</body></html>\n"
    )
