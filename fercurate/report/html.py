"""Tiny HTML building blocks for the static reports (no template engine, everything escaped).

The main report (``fercurate report``) and the quality pages (``fercurate quality report``) share
:data:`STYLE`, :func:`page` and the number formats below, so both read as one document.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Sequence
from typing import Any

STYLE = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1d232b;background:#f6f7f9}
header{background:#1d2b3a;color:#fff;padding:18px 32px}header h1{margin:0 0 4px;font-size:22px}
header p{margin:0;color:#b9c6d3}main{padding:8px 32px 40px;max-width:1280px}
nav{margin:10px 0 0}nav a{color:#cfe3ff;margin-right:14px;text-decoration:none}
section{background:#fff;border:1px solid #dfe3e8;border-radius:8px;padding:12px 20px 18px;margin:18px 0}
h2{font-size:18px;margin:6px 0 10px}h3{font-size:15px;margin:16px 0 6px}
table{border-collapse:collapse;margin:6px 0 10px;font-size:13px}
th,td{border:1px solid #dfe3e8;padding:3px 9px;text-align:right}th{background:#eef1f5}
td.l,th.l{text-align:left}.muted{color:#6b7682}.ok{color:#1a7f37}.bad{color:#b42318}
.figs{display:flex;flex-wrap:wrap;gap:14px;align-items:flex-start}.figs figure{margin:0}
figure{margin:8px 0}figure img{max-width:100%;border:1px solid #dfe3e8;border-radius:4px}
figcaption{font-size:12px;color:#6b7682}
code{background:#eef1f5;padding:1px 4px;border-radius:3px}
ul.findings{padding-left:22px;margin:6px 0;font-size:15px}ul.findings li{margin:6px 0}
ul.findings li.bad{color:inherit}ul.findings li.bad::marker{content:"⚠  ";color:#b42318}ul.findings b{font-variant-numeric:tabular-nums}
details{margin:6px 0}summary{cursor:pointer;color:#35506b}
"""


def unreadable_list(messages: Sequence[str]) -> str:
    """What a section could not read (each message names the file and what is wrong), shown, never dropped."""
    if not messages:
        return ""
    items = "".join(f"<li>{esc(m)}</li>" for m in messages)
    files = f"{len(messages):,} file{'s' if len(messages) > 1 else ''}"
    return f'<div class="bad"><p>Could not read {files}:</p><ul>{items}</ul></div>'


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def missing(value: Any) -> bool:
    """None or a float NaN / infinity: shown as '—', never as 'nan' or 'None'."""
    return value is None or (isinstance(value, float) and not math.isfinite(value))


def fmt(value: Any, digits: int = 2) -> str:
    """Numbers for tables: thousands separators, fixed decimals, '—' for missing."""
    if missing(value):
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return esc(value)


def pct(fraction: float | None, digits: int = 1) -> str:
    """A fraction as a percentage for people: ``0.23612`` -> ``23.6 %``; '—' when missing, '< 0.1 %' when tiny."""
    if missing(fraction):
        return "—"
    value = 100 * float(fraction)
    if 0 < abs(value) < 10 ** -digits:
        return f"< {10 ** -digits:.{digits}f} %"  # never '0.0 %' for a few rows out of many
    return f"{value:,.{digits}f} %"


def num(value: int | float | None, *, key: str | None = None) -> str:
    """A count in bold with thousands separators; ``key`` adds ``data-key`` so tests can find it."""
    attr = f' data-key="{esc(key)}"' if key else ""
    raw = "" if missing(value) else f' data-value="{value}"'
    return f"<b{attr}{raw}>{fmt(value)}</b>"


def table(header: Sequence[str], rows: Iterable[Sequence[Any]], left: int = 1) -> str:
    """A table; the first ``left`` columns are left-aligned text, the rest right-aligned numbers."""
    head = "".join(f'<th class="{"l" if i < left else ""}">{esc(h)}</th>' for i, h in enumerate(header))
    body = []
    for row in rows:
        cells = "".join(
            f'<td class="{"l" if i < left else ""}">{v if isinstance(v, Raw) else fmt(v)}</td>' for i, v in enumerate(row)
        )
        body.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


class Raw(str):
    """Already-escaped HTML to put in a table cell as is."""


def figure(src: str, caption: str, width: int | None = None) -> str:
    """An image that opens full size when clicked, with its caption."""
    w = f' style="width:{width}px"' if width else ""
    return (f'<figure{w}><a href="{esc(src)}"><img src="{esc(src)}" alt="{esc(caption)}"></a>'
            f"<figcaption>{esc(caption)}</figcaption></figure>")


def link(href: str, text: str) -> str:
    return f'<a href="{esc(href)}">{esc(text)}</a>'


def section(anchor: str, title: str, body: str) -> str:
    return f'<section id="{esc(anchor)}"><h2>{esc(title)}</h2>{body}</section>'


def page(title: str, subtitle: str, sections: Sequence[tuple[str, str, str]],
         links: Sequence[tuple[str, str]] = ()) -> str:
    """A whole page: header with a nav bar (one entry per section, then ``links`` to other pages)."""
    nav = "".join(f'<a href="#{esc(a)}">{esc(t)}</a>' for a, t, _ in sections)
    nav += "".join(f'<a href="{esc(href)}">{esc(text)}</a>' for href, text in links)
    body = "".join(section(a, t, b) for a, t, b in sections)
    return (
        f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{esc(title)}</title>"
        f"<style>{STYLE}</style></head><body><header><h1>{esc(title)}</h1><p>{esc(subtitle)}</p>"
        f"<nav>{nav}</nav></header><main>{body}</main></body></html>"
    )
