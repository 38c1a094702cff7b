"""Directed graphs laid out in layers for SVG: a pipeline's DAG and a model's lineage.

::

    drawn = layout([Box("prepare", "prepare", "completed · 0.20 s", "completed"),
                    Box("train", "train", "cached", "cached")],
                   [("prepare", "train")])
    # drawn.nodes: boxes with x, y; drawn.edges: SVG path data; drawn.width, drawn.height

Each node sits in the column of its longest path from a source (left to right); within a
column nodes keep their order, nudged towards the mean row of their predecessors so edges
cross less. An edge that skips columns arcs over the boxes between. The ``graph`` macro of
``_macros.html`` draws the result; every text is escaped there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Box", "Drawn", "Placed", "layout"]

WIDTH, HEIGHT, GAP_X, GAP_Y, PAD, ARC = 170, 48, 60, 18, 10, 34


@dataclass(frozen=True, slots=True)
class Box:
    """A node to draw: ``kind`` is its CSS class (a status, or what the node is)."""

    id: str
    label: str
    detail: str = ""
    kind: str = ""
    href: str = ""


@dataclass(frozen=True, slots=True)
class Placed:
    box: Box
    x: int
    y: int
    width: int = WIDTH
    height: int = HEIGHT


@dataclass(frozen=True, slots=True)
class Drawn:
    nodes: tuple[Placed, ...]
    edges: tuple[str, ...]
    width: int
    height: int


def _columns(boxes: Sequence[Box], edges: Sequence[tuple[str, str]]) -> dict[str, int]:
    column = {b.id: 0 for b in boxes}
    for _ in range(len(boxes)):  # longest path; bounded, so a cycle cannot loop forever
        changed = False
        for source, target in edges:
            if column[target] < column[source] + 1:
                column[target] = column[source] + 1
                changed = True
        if not changed:
            break
    return column


def layout(boxes: Sequence[Box], edges: Sequence[tuple[str, str]]) -> Drawn:
    """Place ``boxes`` in columns; ``edges`` between unknown ids are dropped."""
    known = {b.id for b in boxes}
    kept = [(s, t) for s, t in dict.fromkeys(edges) if s in known and t in known and s != t]
    column = _columns(boxes, kept)
    by_column: dict[int, list[Box]] = {}
    for box in boxes:
        by_column.setdefault(column[box.id], []).append(box)
    row: dict[str, float] = {}
    for index in sorted(by_column):
        members = by_column[index]
        wanted = {}
        for position, box in enumerate(members):
            preds = [row[s] for s, t in kept if t == box.id and s in row]
            wanted[box.id] = sum(preds) / len(preds) if preds else float(position)
        members.sort(key=lambda b: wanted[b.id])
        for position, box in enumerate(members):
            row[box.id] = float(position)
    rows = max((len(m) for m in by_column.values()), default=0)
    skips = [(s, t) for s, t in kept if column[t] - column[s] > 1]
    top = PAD + (ARC if skips else 0)  # room for the arcs above the boxes
    placed: dict[str, Placed] = {}
    for index, members in by_column.items():
        offset = (rows - len(members)) * (HEIGHT + GAP_Y) / 2
        for position, box in enumerate(members):
            placed[box.id] = Placed(box, PAD + index * (WIDTH + GAP_X),
                                    round(top + offset + position * (HEIGHT + GAP_Y)))
    paths = []
    for source, target in kept:
        a, b = placed[source], placed[target]
        if (source, target) in skips:  # from the top of one box over the others to the next
            x1, y1, x2, y2 = a.x + a.width // 2, a.y, b.x + b.width // 2, b.y - 6
            peak = min(a.y, b.y) - ARC + PAD // 2
            paths.append(f"M{x1},{y1} C{x1},{peak} {x2},{peak} {x2},{y2}")
            continue
        x1, y1 = a.x + a.width, a.y + a.height // 2
        x2, y2 = b.x, b.y + b.height // 2
        bend = max(20, (x2 - x1) // 2)
        paths.append(f"M{x1},{y1} C{x1 + bend},{y1} {x2 - bend},{y2} {x2 - 6},{y2}")
    columns = max(by_column, default=-1) + 1
    return Drawn(nodes=tuple(placed[b.id] for b in boxes), edges=tuple(paths),
                 width=max(0, columns * (WIDTH + GAP_X) - GAP_X) + 2 * PAD,
                 height=max(0, rows * (HEIGHT + GAP_Y) - GAP_Y) + PAD + top)
