"""Go's text/tabwriter as docker configures it (minwidth 10, padding 3, spaces).

Model: each line is split at tabs into cells; a tab-terminated cell belongs to a column, the
text after the last tab does not. A column block is a run of consecutive lines that all have a
cell in that column; its width is max(minwidth, widest cell + padding). This is Go's recursive
``format``, so tables with ragged rows line up the way the docker CLI's do.

    >>> print(tabwrite("CONTAINER ID\\tIMAGE\\tNAMES\\nabc\\tbusybox\\tweb"), end="")
    CONTAINER ID   IMAGE     NAMES
    abc            busybox   web
"""

from __future__ import annotations


def tabwrite(text: str, minwidth: int = 10, padding: int = 3) -> str:
    trailing_newline = text.endswith("\n")
    raw = text[:-1] if trailing_newline else text
    lines = [line.split("\t") for line in raw.split("\n")] if raw or trailing_newline else []
    out: list[str] = []
    widths: list[int] = []

    def write_lines(line0: int, line1: int) -> None:
        for cells in lines[line0:line1]:
            parts = []
            for j, cell in enumerate(cells):
                if j < len(widths) and j < len(cells) - 1:
                    parts.append(cell + " " * (widths[j] - len(cell)))
                else:
                    parts.append(cell)
            out.append("".join(parts))

    def fmt(line0: int, line1: int) -> None:
        column = len(widths)
        this = line0
        while this < line1:
            if column >= len(lines[this]) - 1:
                this += 1
                continue
            write_lines(line0, this)
            line0 = this
            width = minwidth
            while this < line1 and column < len(lines[this]) - 1:
                width = max(width, len(lines[this][column]) + padding)
                this += 1
            widths.append(width)
            fmt(line0, this)
            widths.pop()
            line0 = this
        write_lines(line0, line1)

    fmt(0, len(lines))
    result = "\n".join(out)
    return result + "\n" if trailing_newline else result
