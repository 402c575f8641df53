"""A lineage as a drawable graph: nodes and edges, collapse groups and a layered layout.

The browser only draws: everything that needs the whole graph is computed here.

* Nodes are the lineage's runs and entities; edges follow the data (entity -> run for ``used``,
  run -> entity for ``generated``), so every edge of a DAG goes from a lower layer to a higher one.
* Collapse groups fold what makes large lineages unreadable: fan-ins and fan-outs of more than
  ``fan_min - 1`` siblings of the same kind and class around one node become one "n files" (or
  "n runs") node, repeated on the folded graph so the runs between two folded sets fold too; then
  maximal chains of at least ``chain_min`` single-input single-output nodes become one "n steps" node.
  Groups are computed once on the whole lineage and named by a hash of their members, so expanding one
  leaves every other group as it was.
* The layout is longest-path layering (sources pulled next to their first consumer), then a few
  barycenter sweeps to reduce edge crossings, then one column per layer and one row per position.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Literal

from .errors import LineageError
from .lineage import Direction, EntityNode, Lineage, RunNode
from .namespaces import SKG, compact
from .queries import load_query
from .store import Store
from .terms import IRI, Lit

__all__ = [
    "CHAIN_MIN",
    "COLUMN_GAP",
    "FAN_MIN",
    "ROW_GAP",
    "CollapseGroup",
    "GraphEdge",
    "GraphNode",
    "LineageGraph",
    "PlacedNode",
    "build_lineage_graph",
    "describe_entity",
    "find_groups",
    "full_graph",
    "graph_json",
    "layered_layout",
]

NodeKind = Literal["run", "entity", "group"]
Relation = Literal["used", "generated"]

CHAIN_MIN = 3
"""Chains of at least this many single-input single-output nodes fold into one node."""
FAN_MIN = 9
"""Fan-ins (and fan-outs) of at least this many siblings of one class fold into one node."""
COLUMN_GAP = 240.0
ROW_GAP = 56.0
_BARYCENTER_SWEEPS = 4
_FAN_PASSES = 4
_SAFE_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\-]{0,199}")
_MEMBER_LABELS_SHOWN = 50


@dataclass(frozen=True)
class GraphNode:
    """One run or entity of the lineage (or a collapse group standing for several)."""

    id: str
    kind: NodeKind
    label: str
    iri: str | None = None
    classes: tuple[str, ...] = ()
    status: str | None = None
    details: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class GraphEdge:
    source: str
    target: str
    relation: Relation
    role: str | None = None
    folded: int = 1
    """How many edges of the full graph this edge stands for."""


@dataclass(frozen=True)
class CollapseGroup:
    id: str
    reason: Literal["chain", "fan"]
    members: tuple[str, ...]
    label: str
    runs: int
    entities: int


@dataclass
class PlacedNode:
    node: GraphNode
    layer: int
    row: int
    x: float
    y: float
    group: CollapseGroup | None = None
    """For a group node: the group it stands for."""
    member_of: str | None = None
    """For an expanded group's member: that group's id (so the page can offer to fold it again)."""


@dataclass
class LineageGraph:
    root: str
    direction: Direction
    nodes: list[PlacedNode]
    edges: list[GraphEdge]
    groups: list[CollapseGroup]
    expanded: frozenset[str]
    runs: int
    entities: int
    full_edges: int
    layers: int = 0
    labels: dict[str, str] = field(default_factory=dict)
    """The label of every node of the full graph (group members included)."""


# -- the full graph ----------------------------------------------------------------------------------


def _node_id(kind: str, iri: str) -> str:
    segment = iri.rstrip("/").rsplit("/", 1)[-1]
    if not _SAFE_SEGMENT.fullmatch(segment):
        segment = hashlib.sha256(iri.encode()).hexdigest()[:24]
    return f"{kind}-{segment}"


def _local(iri: str) -> str:
    return re.split(r"[#/]", iri)[-1] or iri


def _entity_node(entity: EntityNode) -> GraphNode:
    classes = tuple(sorted(_local(c) for c in entity.classes if c != SKG + "DataFile")) or ("DataFile",)
    paths = sorted(entity.paths)
    label = PurePosixPath(paths[0]).name if paths else classes[0]
    details: list[tuple[str, str]] = [("class", ", ".join(classes))]
    details += [("path", path) for path in paths]
    if entity.formats:
        formats = sorted(_local(f).removeprefix("Format_") for f in entity.formats)
        details.append(("format", ", ".join(formats)))
    if entity.size is not None:
        details.append(("size", f"{entity.size:,} bytes"))
    if entity.sha256:
        details.append(("sha256", entity.sha256))
    node_id = _node_id("entity", entity.iri)
    return GraphNode(node_id, "entity", label, entity.iri, classes, None, tuple(details))


def _run_node(run: RunNode) -> GraphNode:
    step = _local(run.step) if run.step else "Run"
    status = _local(run.status) if run.status else None
    details: list[tuple[str, str]] = [("step", step)]
    if status:
        details.append(("status", status))
    if run.started:
        details.append(("started", run.started))
    if run.ended:
        details.append(("ended", run.ended))
    for software in run.software:
        name = " ".join(part for part in (software["name"], software["version"]) if part)
        if name:
            details.append(("software", name))
    for parameter in run.parameters:
        unit = f" {_local(parameter.unit)}" if parameter.unit else ""
        details.append((f"parameter {parameter.name}", f"{parameter.value}{unit}"))
    for key, value in (("user", run.user), ("host", run.host), ("error", run.error)):
        if value:
            details.append((key, value))
    return GraphNode(_node_id("run", run.iri), "run", step, run.iri, (step,), status, tuple(details))


def full_graph(lineage: Lineage) -> tuple[dict[str, GraphNode], list[GraphEdge], str]:
    """Every run and entity of ``lineage`` as a node, every usage and generation inside it as an edge,
    and the root's node id."""
    nodes: dict[str, GraphNode] = {}
    entity_ids: dict[str, str] = {}
    for entity in sorted(lineage.entities.values(), key=lambda e: e.iri):
        node = _entity_node(entity)
        nodes[node.id] = node
        entity_ids[entity.iri] = node.id
    edges: set[GraphEdge] = set()
    for run in sorted(lineage.runs.values(), key=lambda r: r.iri):
        node = _run_node(run)
        nodes[node.id] = node
        for used, role in run.used:
            if used in entity_ids:
                edges.add(GraphEdge(entity_ids[used], node.id, "used", role))
        for generated, role in run.generated:
            if generated in entity_ids:
                edges.add(GraphEdge(node.id, entity_ids[generated], "generated", role))
    unique: dict[tuple[str, str], GraphEdge] = {}
    for edge in sorted(edges, key=lambda e: (e.source, e.target, e.role or "")):
        unique.setdefault((edge.source, edge.target), edge)
    return nodes, list(unique.values()), entity_ids[lineage.root]


def describe_entity(store: Store, iri: str) -> GraphNode:
    """The node of one recorded entity (label, classes, details) without computing its lineage."""
    if not iri.startswith(("http://", "https://")) or re.search(r'[\s<>"{}|^`\\]', iri):
        raise LineageError(f"{iri!r} is not an entity IRI (expected https://w3id.org/scipion-kg/id/entity/…)")
    rows = store.select(load_query("entity-details").replace("{{entities}}", f"<{iri}>"))
    if not rows:
        raise LineageError(f"{compact(iri)} is not an entity recorded in this project")
    entity = EntityNode(iri)
    for row in rows:
        for key, bucket in (("class", entity.classes), ("format", entity.formats), ("path", entity.paths)):
            value = row.get(key)
            if isinstance(value, IRI | Lit) and str(value) not in bucket:
                bucket.append(str(value))
        sha256, size = row.get("sha256"), row.get("size")
        entity.sha256 = str(sha256) if sha256 is not None else None
        entity.size = int(size.lexical) if isinstance(size, Lit) else None
    return _entity_node(entity)


# -- folding -----------------------------------------------------------------------------------------


def _fold(
    node_ids: Iterable[str], edges: Iterable[GraphEdge], display: Mapping[str, str]
) -> tuple[list[str], list[GraphEdge]]:
    """The quotient graph: each node replaced by ``display[node]`` (itself when absent), parallel
    edges merged (roles joined, counts summed) and edges inside one group dropped."""
    shown = sorted({display.get(node, node) for node in node_ids})
    merged: dict[tuple[str, str], list[GraphEdge]] = {}
    for edge in edges:
        source, target = display.get(edge.source, edge.source), display.get(edge.target, edge.target)
        if source != target:
            merged.setdefault((source, target), []).append(edge)
    folded = []
    for (source, target), group in sorted(merged.items()):
        roles = sorted({edge.role for edge in group if edge.role})
        folded.append(
            GraphEdge(
                source,
                target,
                group[0].relation,
                ", ".join(roles) or None,
                sum(edge.folded for edge in group),
            )
        )
    return shown, folded


def _neighbours(node_ids: Iterable[str], edges: Iterable[GraphEdge]) -> tuple[dict[str, list[str]], ...]:
    predecessors: dict[str, list[str]] = {node: [] for node in node_ids}
    successors: dict[str, list[str]] = {node: [] for node in predecessors}
    for edge in edges:
        successors[edge.source].append(edge.target)
        predecessors[edge.target].append(edge.source)
    return predecessors, successors


def _group(
    reason: Literal["chain", "fan"], members: Iterable[str], nodes: Mapping[str, GraphNode]
) -> CollapseGroup:
    ordered = tuple(sorted(members))
    runs = sum(1 for member in ordered if nodes[member].kind == "run")
    entities = len(ordered) - runs
    digest = hashlib.sha256("\n".join(ordered).encode()).hexdigest()[:16]
    if reason == "chain":
        label = f"{runs} steps"
    else:
        kinds = sorted({nodes[member].classes[0] if nodes[member].classes else "" for member in ordered})
        noun = "runs" if runs else "files"
        label = f"{len(ordered)} {noun} · {', '.join(kinds)}"
    return CollapseGroup(f"group-{digest}", reason, ordered, label, runs, entities)


class _Quotient:
    """The graph with groups folded, kept up to date as groups are added (adjacency as sets)."""

    def __init__(self, node_ids: Iterable[str], edges: Iterable[GraphEdge]) -> None:
        self.successors: dict[str, set[str]] = {node: set() for node in node_ids}
        self.predecessors: dict[str, set[str]] = {node: set() for node in self.successors}
        for edge in edges:
            self.successors[edge.source].add(edge.target)
            self.predecessors[edge.target].add(edge.source)

    def fold(self, members: Collection[str], group_id: str) -> None:
        self.successors[group_id], self.predecessors[group_id] = set(), set()
        for member in members:
            for following in self.successors.pop(member):
                self.predecessors[following].discard(member)
                if following not in members:
                    self.successors[group_id].add(following)
                    self.predecessors[following].add(group_id)
            for previous in self.predecessors.pop(member):
                self.successors[previous].discard(member)
                if previous not in members:
                    self.predecessors[group_id].add(previous)
                    self.successors[previous].add(group_id)

    def antichain(self, members: list[str]) -> list[str]:
        """The members no other member leads to. Folding a set where one member derives from another
        would draw a group feeding itself; folding an antichain of an acyclic graph keeps it acyclic."""
        reached: set[str] = set()
        frontier = [following for member in members for following in self.successors[member]]
        while frontier:
            node = frontier.pop()
            if node not in reached:
                reached.add(node)
                frontier.extend(self.successors[node])
        return [member for member in members if member not in reached]


def _fan_groups(
    nodes: Mapping[str, GraphNode], edges: list[GraphEdge], root: str, fan_min: int
) -> list[CollapseGroup]:
    groups: list[CollapseGroup] = []
    grouped: set[str] = set()
    quotient = _Quotient(nodes, edges)
    for _ in range(_FAN_PASSES):
        candidates: list[tuple[int, str, list[str]]] = []
        for hub in sorted(quotient.successors):
            for side in (quotient.predecessors[hub], quotient.successors[hub]):
                buckets: dict[tuple[str, tuple[str, ...]], list[str]] = {}
                for sibling in side:
                    if sibling != root and sibling in nodes and sibling not in grouped:
                        node = nodes[sibling]
                        buckets.setdefault((node.kind, node.classes), []).append(sibling)
                for bucket in buckets.values():
                    if len(bucket) >= fan_min:
                        candidates.append((-len(bucket), min(bucket), sorted(bucket)))
        added = False
        for _, _, bucket in sorted(candidates):
            free = quotient.antichain([member for member in bucket if member not in grouped])
            if len(free) < fan_min:
                continue
            group = _group("fan", free, nodes)
            groups.append(group)
            grouped.update(group.members)
            quotient.fold(set(group.members), group.id)
            added = True
        if not added:
            break
    return groups


def _chain_groups(
    nodes: Mapping[str, GraphNode],
    edges: list[GraphEdge],
    root: str,
    display: Mapping[str, str],
    chain_min: int,
) -> list[CollapseGroup]:
    shown, folded = _fold(nodes, edges, display)
    predecessors, successors = _neighbours(shown, folded)

    def linear(node: str) -> bool:
        return (
            node in nodes
            and node != root
            and node not in display
            and len(predecessors[node]) == 1
            and len(successors[node]) == 1
        )

    groups = []
    for start in shown:
        if not linear(start) or linear(predecessors[start][0]):
            continue
        chain = [start]
        while linear(successors[chain[-1]][0]) and successors[chain[-1]][0] not in chain:
            chain.append(successors[chain[-1]][0])
        if len(chain) >= chain_min and any(nodes[member].kind == "run" for member in chain):
            groups.append(_group("chain", chain, nodes))
    return groups


def find_groups(
    nodes: Mapping[str, GraphNode],
    edges: list[GraphEdge],
    root: str,
    *,
    chain_min: int = CHAIN_MIN,
    fan_min: int = FAN_MIN,
) -> list[CollapseGroup]:
    """The collapse groups of a full graph (see the module docstring); no node is in two groups and
    the root is in none."""
    fans = _fan_groups(nodes, edges, root, fan_min)
    display = {member: group.id for group in fans for member in group.members}
    return fans + _chain_groups(nodes, edges, root, display, chain_min)


# -- layout ------------------------------------------------------------------------------------------


def _acyclic(node_ids: list[str], edges: list[GraphEdge]) -> list[tuple[str, str]]:
    """The edges without the back edges of a depth-first search (a lineage is a DAG, but a run that
    writes back a file identical to its input would close a cycle)."""
    _, successors = _neighbours(node_ids, edges)
    state: dict[str, int] = {}
    back: set[tuple[str, str]] = set()
    for start in node_ids:
        if start in state:
            continue
        state[start] = 1
        stack = [(start, iter(successors[start]))]
        while stack:
            node, pending = stack[-1]
            following = next(pending, None)
            if following is None:
                state[node] = 2
                stack.pop()
            elif state.get(following) == 1:
                back.add((node, following))
            elif following not in state:
                state[following] = 1
                stack.append((following, iter(successors[following])))
    return [(e.source, e.target) for e in edges if (e.source, e.target) not in back]


def _layers(node_ids: list[str], arcs: list[tuple[str, str]]) -> dict[str, int]:
    predecessors: dict[str, list[str]] = {node: [] for node in node_ids}
    successors: dict[str, list[str]] = {node: [] for node in node_ids}
    for source, target in arcs:
        successors[source].append(target)
        predecessors[target].append(source)
    pending = {node: len(predecessors[node]) for node in node_ids}
    ready = [node for node in node_ids if pending[node] == 0]
    layer = dict.fromkeys(node_ids, 0)
    while ready:
        node = ready.pop()
        for following in successors[node]:
            layer[following] = max(layer[following], layer[node] + 1)
            pending[following] -= 1
            if pending[following] == 0:
                ready.append(following)
    # A source is drawn next to its first consumer rather than in the first column.
    for node in node_ids:
        if not predecessors[node] and successors[node]:
            layer[node] = min(layer[following] for following in successors[node]) - 1
    return layer


def layered_layout(
    node_ids: Collection[str], edges: Iterable[GraphEdge], sort_key: Callable[[str], tuple[str, ...]]
) -> dict[str, tuple[int, int]]:
    """Layer and row of each node: longest-path layering, then barycenter sweeps (down, then up) that
    order each layer by the mean row of the node's neighbours in the other layers."""
    ordered_ids = sorted(node_ids)
    edge_list = list(edges)
    arcs = _acyclic(ordered_ids, edge_list)
    layer = _layers(ordered_ids, arcs)
    depth = max(layer.values(), default=-1) + 1
    columns: list[list[str]] = [[] for _ in range(depth)]
    for node in sorted(ordered_ids, key=sort_key):
        columns[layer[node]].append(node)
    predecessors: dict[str, list[str]] = {node: [] for node in ordered_ids}
    successors: dict[str, list[str]] = {node: [] for node in ordered_ids}
    for source, target in arcs:
        successors[source].append(target)
        predecessors[target].append(source)

    # Rows measured from each column's middle, as the columns are drawn centred.
    position: dict[str, float] = {}

    def place(column: list[str]) -> None:
        middle = (len(column) - 1) / 2
        position.update((node, row - middle) for row, node in enumerate(column))

    for column in columns:
        place(column)

    def sweep(column_order: Iterable[int], neighbours: Mapping[str, list[str]]) -> None:
        for index in column_order:
            weight = {
                node: sum(position[n] for n in neighbours[node]) / len(neighbours[node])
                if neighbours[node]
                else position[node]
                for node in columns[index]
            }
            columns[index] = sorted(columns[index], key=weight.__getitem__)
            place(columns[index])

    for _ in range(_BARYCENTER_SWEEPS):
        sweep(range(1, depth), predecessors)
        sweep(range(depth - 2, -1, -1), successors)
    return {node: (index, row) for index, column in enumerate(columns) for row, node in enumerate(column)}


# -- the displayed graph -----------------------------------------------------------------------------


def build_lineage_graph(
    lineage: Lineage,
    expand: Collection[str] = (),
    *,
    expand_all: bool = False,
    chain_min: int = CHAIN_MIN,
    fan_min: int = FAN_MIN,
) -> LineageGraph:
    """The lineage folded by its collapse groups (except the ``expand``ed ones, or none with
    ``expand_all``) and laid out. Unknown group ids in ``expand`` are ignored."""
    nodes, edges, root = full_graph(lineage)
    groups = find_groups(nodes, edges, root, chain_min=chain_min, fan_min=fan_min)
    known = {group.id for group in groups}
    expanded = frozenset(known if expand_all else known & set(expand))
    folded_groups = {group.id: group for group in groups if group.id not in expanded}
    display = {member: group.id for group in folded_groups.values() for member in group.members}
    member_of = {member: group.id for group in groups if group.id in expanded for member in group.members}
    shown, shown_edges = _fold(nodes, edges, display)
    group_nodes = {
        group.id: GraphNode(group.id, "group", group.label, None, ()) for group in folded_groups.values()
    }

    def node_of(node_id: str) -> GraphNode:
        return nodes[node_id] if node_id in nodes else group_nodes[node_id]

    def sort_key(node_id: str) -> tuple[str, ...]:
        return (node_of(node_id).label, node_id)

    positions = layered_layout(shown, shown_edges, sort_key)
    column_sizes: dict[int, int] = {}
    for layer, _ in positions.values():
        column_sizes[layer] = column_sizes.get(layer, 0) + 1
    placed = []
    for node_id in shown:
        layer, row = positions[node_id]
        placed.append(
            PlacedNode(
                node_of(node_id),
                layer,
                row,
                x=layer * COLUMN_GAP,
                y=(row - (column_sizes[layer] - 1) / 2) * ROW_GAP,
                group=folded_groups.get(node_id),
                member_of=member_of.get(node_id),
            )
        )
    placed.sort(key=lambda p: (p.layer, p.row))
    return LineageGraph(
        root=root,
        direction=lineage.direction,
        nodes=placed,
        edges=shown_edges,
        groups=groups,
        expanded=expanded,
        runs=len(lineage.runs),
        entities=len(lineage.entities),
        full_edges=len(edges),
        layers=len(column_sizes),
        labels={node_id: node.label for node_id, node in nodes.items()},
    )


def graph_json(
    graph: LineageGraph, links: Callable[[GraphNode], Mapping[str, str | None]] | None = None
) -> dict[str, object]:
    """The JSON the lineage page draws. ``links`` gives extra string fields per node (URLs of its
    page, its token...): this module knows nothing of the web application's routes."""
    nodes: list[dict[str, object]] = []
    for placed in graph.nodes:
        node = placed.node
        entry: dict[str, object] = {
            "id": node.id,
            "kind": node.kind,
            "label": node.label,
            "iri": node.iri,
            "compact": compact(node.iri) if node.iri else None,
            "classes": list(node.classes),
            "status": node.status,
            "root": node.id == graph.root,
            "layer": placed.layer,
            "row": placed.row,
            "x": placed.x,
            "y": placed.y,
            "details": [list(pair) for pair in node.details],
            "member_of": placed.member_of,
            "group": None,
        }
        if placed.group is not None:
            group = placed.group
            entry["group"] = {
                "id": group.id,
                "reason": group.reason,
                "count": len(group.members),
                "runs": group.runs,
                "entities": group.entities,
                "members": list(group.members),
                "member_labels": [graph.labels.get(m, m) for m in group.members[:_MEMBER_LABELS_SHOWN]],
            }
        if links is not None:
            entry.update(links(node))
        nodes.append(entry)
    return {
        "root": graph.root,
        "direction": graph.direction,
        "nodes": nodes,
        "edges": [
            {
                "source": edge.source,
                "target": edge.target,
                "relation": edge.relation,
                "role": edge.role,
                "folded": edge.folded,
            }
            for edge in graph.edges
        ],
        "groups": [
            {
                "id": group.id,
                "reason": group.reason,
                "label": group.label,
                "count": len(group.members),
                "expanded": group.id in graph.expanded,
            }
            for group in graph.groups
        ],
        "expanded": sorted(graph.expanded),
        "counts": {
            "runs": graph.runs,
            "entities": graph.entities,
            "edges": graph.full_edges,
            "shown_nodes": len(graph.nodes),
            "shown_edges": len(graph.edges),
            "groups": len(graph.groups),
            "collapsed_groups": len(graph.groups) - len(graph.expanded),
            "layers": graph.layers,
        },
        "layout": {"column_gap": COLUMN_GAP, "row_gap": ROW_GAP},
    }
