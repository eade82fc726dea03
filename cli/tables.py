"""Plain-text tables for a terminal."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["MAX_CELL_CHARS", "format_table"]

# Long URLs would push every other column off screen; the JSON output keeps
# them whole.
MAX_CELL_CHARS = 48
_ELLIPSIS = "..."
_GAP = "  "


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Left-aligned columns as wide as their widest cell, without trailing
    spaces; None shows as '-'."""
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [len(header) for header in headers]
    for row in cells:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]

    lines = [_line(headers, widths)]
    lines.extend(_line(row, widths) for row in cells)
    return "\n".join(lines)


def _cell(value: object) -> str:
    text = "-" if value is None else str(value)
    if len(text) > MAX_CELL_CHARS:
        return text[: MAX_CELL_CHARS - len(_ELLIPSIS)] + _ELLIPSIS
    return text


def _line(cells: Sequence[str], widths: Sequence[int]) -> str:
    padded = (cell.ljust(width) for cell, width in zip(cells, widths, strict=True))
    return _GAP.join(padded).rstrip()
