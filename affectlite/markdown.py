"""Markdown for the kit's reports: one table builder, used by every report."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def table(
    header: Sequence[str], rows: Iterable[Sequence[object]], right: Sequence[int] = ()
) -> list[str]:
    """A GitHub Markdown table as lines; cells are ``str()``-ed, ``right`` columns right-aligned.

    Raises:
        ValueError: if a row's length differs from the header's (a bug in the report builder).
    """
    rule = ["---:" if column in right else "---" for column in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(rule) + "|"]
    for row in rows:
        if len(row) != len(header):
            raise ValueError(f"Row {list(row)} has {len(row)} cells for {len(header)} columns.")
        lines.append("| " + " | ".join(str(cell) for cell in row) + " |")
    return lines
