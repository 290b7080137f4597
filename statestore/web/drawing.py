"""Where each part of a job's task graph goes in its SVG picture.

:func:`~statestore.overview.graph.job_graph` says what the graph is
(layers, nodes, edges); this says where to draw it. Tasks flow left to
right, a column per layer; a layer taller than :data:`ROWS` tasks wraps
into several columns, so a job of a few hundred independent frame tasks
stays a block rather than a ribbon. A summarised graph is a column of
bars, one per group of layers, each split by task status.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

__all__ = ["Drawing", "draw"]

ROWS: Final = 25
NODE_W: Final = 150
NODE_H: Final = 20
COLUMN_W: Final = 190
ROW_H: Final = 26
MARGIN: Final = 10
BAR_W: Final = 640
BAR_H: Final = 26
BAR_GAP: Final = 22
LABEL_W: Final = 200
SHORT_NAME: Final = 22


@dataclass
class Drawing:
    """An SVG picture's parts, in pixels."""

    width: int
    height: int
    summarised: bool
    nodes: list[dict[str, Any]] = field(default_factory=list)
    edges: list[str] = field(default_factory=list)
    """SVG path data, one per edge."""


def _short(name: str) -> str:
    return name if len(name) <= SHORT_NAME else name[: SHORT_NAME - 1] + "…"


def _tasks(graph: dict[str, Any]) -> Drawing:
    # Each layer starts at the column after the previous layer's last.
    columns_of = [0] * graph["layers"]
    for node in graph["nodes"]:
        columns_of[node["layer"]] = max(columns_of[node["layer"]], node["row"] // ROWS + 1)
    first_column = [0] * graph["layers"]
    for layer in range(1, graph["layers"]):
        first_column[layer] = first_column[layer - 1] + columns_of[layer - 1]
    at: dict[str, tuple[int, int]] = {}
    drawing = Drawing(width=0, height=0, summarised=False)
    for node in graph["nodes"]:
        x = MARGIN + (first_column[node["layer"]] + node["row"] // ROWS) * COLUMN_W
        y = MARGIN + (node["row"] % ROWS) * ROW_H
        at[node["uuid"]] = (x, y)
        drawing.nodes.append({**node, "x": x, "y": y, "label": _short(node["name"])})
    for dependency, task in graph["edges"]:
        (x1, y1), (x2, y2) = at[dependency], at[task]
        x1, y1, y2 = x1 + NODE_W, y1 + NODE_H // 2, y2 + NODE_H // 2
        bend = max(20, (x2 - x1) // 2)
        drawing.edges.append(f"M{x1},{y1} C{x1 + bend},{y1} {x2 - bend},{y2} {x2},{y2}")
    drawing.width = MARGIN * 2 + max(sum(columns_of), 1) * COLUMN_W
    drawing.height = MARGIN * 2 + min(ROWS, max((n["row"] for n in graph["nodes"]), default=0) + 1) * ROW_H
    return drawing


def _summary(graph: dict[str, Any], order: list[str]) -> Drawing:
    drawing = Drawing(width=MARGIN * 2 + LABEL_W + BAR_W, height=0, summarised=True)
    for index, group in enumerate(graph["nodes"]):
        y = MARGIN + index * (BAR_H + BAR_GAP)
        segments = []
        x = float(MARGIN + LABEL_W)
        for status in order:
            count = group["counts"].get(status, 0)
            if count:
                width = BAR_W * count / group["tasks"]
                segments.append({"status": status, "count": count, "x": round(x, 1), "width": round(width, 1)})
                x += width
        first, last = group["first_layer"], group["last_layer"]
        layers = f"layer {first}" if first == last else f"layers {first}–{last}"
        drawing.nodes.append({**group, "y": y, "label": f"{layers} · {group['tasks']} tasks", "segments": segments})
    for lower, higher in graph["edges"]:
        x = MARGIN + LABEL_W - 12 - 6 * min(higher - lower - 1, 20)
        y1 = MARGIN + lower * (BAR_H + BAR_GAP) + BAR_H
        y2 = MARGIN + higher * (BAR_H + BAR_GAP)
        drawing.edges.append(
            f"M{MARGIN + LABEL_W - 4},{y1 - BAR_H // 2} C{x},{y1} {x},{y2} {MARGIN + LABEL_W - 4},{y2 + BAR_H // 2}"
        )
    drawing.height = MARGIN * 2 + max(len(graph["nodes"]), 1) * (BAR_H + BAR_GAP)
    return drawing


def draw(graph: dict[str, Any], status_order: list[str]) -> Drawing:
    """Where to draw ``graph`` (a :func:`job_graph` shape); a summary's
    status segments follow ``status_order``."""
    return _summary(graph, status_order) if graph["summarised"] else _tasks(graph)
