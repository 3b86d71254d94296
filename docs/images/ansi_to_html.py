#!/usr/bin/env python3
"""Turn a terminal capture with colours (`tmux capture-pane -e -p`) into an HTML page, for
screenshots of `kelpie monit` taken with a headless browser (see docs/monit.md). Standard
library only. Understands the SGR attributes tmux emits: the 16 colours, 256-colour indexes,
bold, dim, italic, underline and reverse.

    python3 docs/images/ansi_to_html.py capture.ansi > monit.html
"""

import html
import re
import sys

# A dark palette (xterm-like) for the 16 basic colours.
BASIC = [
    "#1e1e1e", "#e06c75", "#98c379", "#e5c07b", "#61afef", "#c678dd", "#56b6c2", "#d7dae0",
    "#7f848e", "#ff7b86", "#b5e890", "#ffd787", "#82c4ff", "#e396ff", "#7fe0eb", "#ffffff",
]
FG, BG = "#d7dae0", "#1e1e1e"


def colour_256(n: int) -> str:
    if n < 16:
        return BASIC[n]
    if n < 232:
        n -= 16
        steps = [0, 95, 135, 175, 215, 255]
        return "#%02x%02x%02x" % (steps[n // 36], steps[(n // 6) % 6], steps[n % 6])
    v = 8 + 10 * (n - 232)
    return "#%02x%02x%02x" % (v, v, v)


def convert(text: str) -> str:
    state = {"fg": None, "bg": None, "bold": False, "dim": False, "italic": False,
             "underline": False, "reverse": False}
    out = []

    def span(chunk: str) -> str:
        fg, bg = state["fg"] or FG, state["bg"] or BG
        if state["reverse"]:
            fg, bg = bg, fg
        style = [f"color:{fg}"]
        if bg != BG:
            style.append(f"background:{bg}")
        if state["bold"]:
            style.append("font-weight:bold")
        if state["dim"]:
            style.append("opacity:0.7")
        if state["italic"]:
            style.append("font-style:italic")
        if state["underline"]:
            style.append("text-decoration:underline")
        return f'<span style="{";".join(style)}">{html.escape(chunk)}</span>'

    for part in re.split(r"(\x1b\[[0-9;]*m)", text):
        if not part.startswith("\x1b["):
            if part:
                out.append(span(part))
            continue
        codes = [int(c) if c else 0 for c in part[2:-1].split(";")]
        i = 0
        while i < len(codes):
            c = codes[i]
            if c == 0:
                state.update(fg=None, bg=None, bold=False, dim=False, italic=False,
                             underline=False, reverse=False)
            elif c == 1:
                state["bold"] = True
            elif c == 2:
                state["dim"] = True
            elif c == 3:
                state["italic"] = True
            elif c == 4:
                state["underline"] = True
            elif c == 7:
                state["reverse"] = True
            elif c == 22:
                state["bold"] = state["dim"] = False
            elif c == 23:
                state["italic"] = False
            elif c == 24:
                state["underline"] = False
            elif c == 27:
                state["reverse"] = False
            elif 30 <= c <= 37:
                state["fg"] = BASIC[c - 30]
            elif 90 <= c <= 97:
                state["fg"] = BASIC[c - 90 + 8]
            elif 40 <= c <= 47:
                state["bg"] = BASIC[c - 40]
            elif 100 <= c <= 107:
                state["bg"] = BASIC[c - 100 + 8]
            elif c == 39:
                state["fg"] = None
            elif c == 49:
                state["bg"] = None
            elif c in (38, 48) and i + 2 < len(codes) and codes[i + 1] == 5:
                state["fg" if c == 38 else "bg"] = colour_256(codes[i + 2])
                i += 2
            elif c in (38, 48) and i + 4 < len(codes) and codes[i + 1] == 2:
                rgb = "#%02x%02x%02x" % tuple(codes[i + 2:i + 5])
                state["fg" if c == 38 else "bg"] = rgb
                i += 4
            i += 1
    return "".join(out)


def main() -> None:
    text = open(sys.argv[1], encoding="utf-8").read().rstrip("\n")
    body = convert(text)
    print(f"""<!doctype html><meta charset="utf-8"><style>
body {{ margin: 0; background: {BG}; }}
pre {{ margin: 0; padding: 12px 14px; color: {FG}; background: {BG};
       font: 15px/1.17 "DejaVu Sans Mono", monospace; }}
</style><pre>{body}</pre>""")


if __name__ == "__main__":
    main()
