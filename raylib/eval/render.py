"""A small document model rendered twice: markdown (plots as PNG files beside it) and self-contained HTML
(plots embedded as base64 data URIs, inline CSS, no external resource)."""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field
from typing import Any

from raylib.eval.tables import fmt, md_table

__all__ = ["Doc"]

CSS = """body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1000px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}table{border-collapse:collapse;margin:.6em 0;font-size:.88em}
th,td{border:1px solid #ccc;padding:.25em .55em;text-align:left}th{background:#f3f3f3}
code{background:#f3f3f3;padding:0 .2em;border-radius:3px}img{max-width:100%;display:block;margin:.6em 0}
h1{border-bottom:2px solid #ddd}h2{border-bottom:1px solid #eee;margin-top:1.6em}.muted{color:#888}"""


@dataclass
class Doc:
    title: str
    blocks: list[tuple] = field(default_factory=list)

    def h(self, text: str, level: int = 2) -> None:
        self.blocks.append(("h", level, text))

    def p(self, text: str) -> None:
        self.blocks.append(("p", text))

    def muted(self, text: str) -> None:
        self.blocks.append(("muted", text))

    def table(self, headers: list[str], rows: list[list[Any]]) -> None:
        if rows:
            self.blocks.append(("table", headers, rows))

    def img(self, name: str, png: bytes | None, alt: str) -> None:
        if png:
            self.blocks.append(("img", name, png, alt))

    def images(self) -> dict[str, bytes]:
        return {b[1]: b[2] for b in self.blocks if b[0] == "img"}

    # -- markdown ----------------------------------------------------------------------------------
    def markdown(self, image_dir: str) -> str:
        out = [f"# {self.title}\n"]
        for b in self.blocks:
            if b[0] == "h":
                out.append(f"{'#' * b[1]} {b[2]}\n")
            elif b[0] == "p":
                out.append(b[1] + "\n")
            elif b[0] == "muted":
                out.append(f"*{b[1]}*\n")
            elif b[0] == "table":
                out.append(md_table(b[1], b[2]))
            elif b[0] == "img":
                out.append(f"![{b[3]}]({image_dir}/{b[1]})\n")
        return "\n".join(out)

    # -- html --------------------------------------------------------------------------------------
    def html(self) -> str:
        parts = ["<!DOCTYPE html>", "<html><head><meta charset='utf-8'>", f"<title>{html.escape(self.title)}</title>",
                 f"<style>{CSS}</style></head><body>", f"<h1>{html.escape(self.title)}</h1>"]
        for b in self.blocks:
            if b[0] == "h":
                parts.append(f"<h{b[1]}>{_inline(b[2])}</h{b[1]}>")
            elif b[0] == "p":
                parts.append(f"<p>{_inline(b[1])}</p>")
            elif b[0] == "muted":
                parts.append(f"<p class='muted'><em>{_inline(b[1])}</em></p>")
            elif b[0] == "table":
                head = "".join(f"<th>{_inline(h)}</th>" for h in b[1])
                body = "".join("<tr>" + "".join(f"<td>{_inline(c if isinstance(c, str) else fmt(c))}</td>"
                                                for c in row) + "</tr>" for row in b[2])
                parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
            elif b[0] == "img":
                data = base64.b64encode(b[2]).decode("ascii")
                parts.append(f"<img alt='{html.escape(b[3], quote=True)}' src='data:image/png;base64,{data}'>")
        parts.append("</body></html>")
        return "\n".join(parts) + "\n"


def _inline(text: str) -> str:
    """Escape, then the two inline marks the report uses: `code` and **bold**."""
    t = html.escape(str(text))
    t = re.sub(r"`([^`]+)`", r"<code>\1</code>", t)
    return re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", t)
