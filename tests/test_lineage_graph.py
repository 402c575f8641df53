"""The drawable lineage graph: collapse rules, layering and crossing reduction on lineages built by hand."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from itertools import combinations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scipion_kg.lineage import Direction, EntityNode, Lineage, RunNode
from scipion_kg.lineage_graph import build_lineage_graph, graph_json
from scipion_kg.namespaces import SKG, entity_iri, run_iri

Step = tuple[str, Sequence[str], Sequence[str]]
"""(run name, names of the entities it used, names of the entities it generated)"""


def _entity(name: str) -> str:
    return entity_iri(hashlib.sha256(name.encode()).hexdigest())


def _run(name: str) -> str:
    return run_iri(hashlib.sha256(b"run " + name.encode()).hexdigest())


def make_lineage(
    steps: Sequence[Step],
    root: str,
    classes: dict[str, str] | None = None,
    direction: Direction = "upstream",
) -> Lineage:
    """A lineage of the given runs; entities are named by file name, of class ``classes[name]``."""
    classes = classes or {}
    names = {name for _, used, made in steps for name in (*used, *made)} | {root}
    entities = {
        _entity(name): EntityNode(
            _entity(name),
            sha256=None,
            classes=[SKG + classes.get(name, "ParticleSet")],
            paths=[f"runs/{name}"],
        )
        for name in names
    }
    runs = {}
    for run_name, used, made in steps:
        runs[_run(run_name)] = RunNode(
            _run(run_name),
            step=SKG + "Classification2D",
            status=SKG + "Succeeded",
            used=[(_entity(name), "input") for name in used],
            generated=[(_entity(name), "output") for name in made],
        )
        for name in made:
            entities[_entity(name)].generated_by.append(_run(run_name))
    return Lineage(_entity(root), direction, entities, runs)


def chain(steps: int) -> Lineage:
    """f0 -> r1 -> f1 -> ... -> r<steps> -> f<steps> (the root)."""
    return make_lineage([(f"r{n}", [f"f{n - 1}"], [f"f{n}"]) for n in range(1, steps + 1)], f"f{steps}")


def fan_in(inputs: int, classes: Sequence[str] = ("Micrograph",)) -> Lineage:
    """``inputs`` files (cycling through ``classes``) all used by one run that makes the root."""
    names = [f"in{n:03d}" for n in range(inputs)]
    return make_lineage(
        [("combine", names, ["map"])],
        "map",
        {name: classes[n % len(classes)] for n, name in enumerate(names)},
    )


def node_id(iri: str) -> str:
    return ("entity-" if "/entity/" in iri else "run-") + iri.rsplit("/", 1)[-1]


def crossings(edges: list[tuple[str, str]], layer: dict[str, int], row: dict[str, int]) -> int:
    """Crossings between edges joining the same pair of adjacent layers."""
    count = 0
    for (a, b), (c, d) in combinations(edges, 2):
        if layer[a] == layer[c] and layer[b] == layer[d] and layer[b] == layer[a] + 1:
            count += (row[a] - row[c]) * (row[b] - row[d]) < 0
    return count


@pytest.mark.parametrize(
    ("steps", "members", "label"),
    [
        (1, 0, None),  # r1 alone: shorter than three nodes
        (2, 3, "2 steps"),  # r1, f1, r2
        (10, 19, "10 steps"),  # r1 .. r10 with the nine files between them
    ],
)
def test_chains_of_single_input_single_output_nodes_collapse(
    steps: int, members: int, label: str | None
) -> None:
    graph = build_lineage_graph(chain(steps))
    groups = [group for group in graph.groups if group.reason == "chain"]
    if label is None:
        assert groups == []
        assert len(graph.nodes) == 2 * steps + 1
        return
    (group,) = groups
    assert (len(group.members), group.runs, group.label) == (members, steps, label)
    assert {node.node.id for node in graph.nodes} == {
        node_id(_entity("f0")),
        group.id,
        node_id(_entity(f"f{steps}")),
    }
    assert [(edge.source, edge.target) for edge in graph.edges] == [
        (node_id(_entity("f0")), group.id),
        (group.id, node_id(_entity(f"f{steps}"))),
    ]


@pytest.mark.parametrize(
    ("inputs", "classes", "group_sizes"),
    [
        (8, ("Micrograph",), []),
        (9, ("Micrograph",), [9]),
        (40, ("Micrograph",), [40]),
        (40, ("Micrograph", "CTFSet"), [20, 20]),
        (12, ("Micrograph", "Micrograph", "CTFSet"), []),  # 8 + 4: neither class has nine
    ],
)
def test_fan_ins_of_many_files_of_one_class_collapse(
    inputs: int, classes: Sequence[str], group_sizes: list[int]
) -> None:
    graph = build_lineage_graph(fan_in(inputs, classes))
    assert sorted(len(group.members) for group in graph.groups) == group_sizes
    assert all(group.reason == "fan" and group.runs == 0 for group in graph.groups)
    assert len(graph.nodes) == inputs + 2 - sum(group_sizes) + len(group_sizes)
    combine = node_id(_run("combine"))
    assert {edge.target for edge in graph.edges if edge.source != combine} == {combine}
    folded = {edge.source: edge.folded for edge in graph.edges}
    for group in graph.groups:
        assert folded[group.id] == len(group.members)
        assert f"{len(group.members)} files" in group.label


def test_the_root_is_never_folded() -> None:
    # The root is one of 40 outputs of one run: its 39 siblings fold, it stays.
    lineage = make_lineage(
        [("split", ["stack"], [f"part{n:02d}" for n in range(40)])],
        "part07",
        {f"part{n:02d}": "ParticleSet" for n in range(40)},
        direction="downstream",
    )
    graph = build_lineage_graph(lineage)
    (group,) = graph.groups
    assert len(group.members) == 39 and node_id(_entity("part07")) not in group.members
    assert graph.root in {node.node.id for node in graph.nodes}


def test_fans_fold_the_runs_between_folded_sets() -> None:
    # 12 movies, each corrected by its own run into its own micrograph, all used by one refinement.
    steps: list[Step] = [(f"motion{n}", [f"movie{n}"], [f"mic{n}"]) for n in range(12)]
    steps.append(("refine", [f"mic{n}" for n in range(12)], ["map"]))
    classes = {f"movie{n}": "Movie" for n in range(12)} | {f"mic{n}": "Micrograph" for n in range(12)}
    graph = build_lineage_graph(make_lineage(steps, "map", classes))
    assert sorted((group.runs, group.entities) for group in graph.groups) == [(0, 12), (0, 12), (12, 0)]
    assert [node.node.kind for node in graph.nodes] == ["group", "group", "group", "run", "entity"]
    assert [node.layer for node in graph.nodes] == [0, 1, 2, 3, 4]


def test_expanding_one_group_keeps_the_others_and_their_ids() -> None:
    steps: list[Step] = [("motion", [f"movie{n}" for n in range(20)], ["mics"])]
    steps += [(f"c{n}", [f"p{n - 1}" if n else "mics"], [f"p{n}"]) for n in range(6)]
    classes = {f"movie{n}": "Movie" for n in range(20)}
    lineage = make_lineage(steps, "p5", classes)
    collapsed = build_lineage_graph(lineage)
    fan, chain_group = sorted(collapsed.groups, key=lambda group: group.reason, reverse=True)
    assert (fan.reason, chain_group.reason) == ("fan", "chain")
    expanded = build_lineage_graph(lineage, [fan.id, "group-unknown"])
    assert [group.id for group in expanded.groups] == [group.id for group in collapsed.groups]
    assert expanded.expanded == {fan.id}
    shown = {node.node.id: node for node in expanded.nodes}
    assert chain_group.id in shown and fan.id not in shown
    assert all(shown[member].member_of == fan.id for member in fan.members)
    everything = build_lineage_graph(lineage, expand_all=True)
    assert len(everything.nodes) == len(lineage.runs) + len(lineage.entities)
    assert (
        len(everything.edges)
        == everything.full_edges
        == sum(len(run.used) + len(run.generated) for run in lineage.runs.values())
    )


def test_barycenter_sweeps_untangle_a_tree() -> None:
    # A binary tree of runs whose file names sort in an order that would cross every pair of edges.
    leaves = ["z", "b", "y", "a", "x", "c", "w", "d"]
    steps: list[Step] = [(f"r{leaf}", [leaf], [f"{leaf}1"]) for leaf in leaves]
    steps += [(f"m{n}", [f"{leaves[2 * n]}1", f"{leaves[2 * n + 1]}1"], [f"m{n}"]) for n in range(4)]
    steps += [
        ("top0", ["m0", "m2"], ["t0"]),
        ("top1", ["m1", "m3"], ["t1"]),
        ("root", ["t0", "t1"], ["final"]),
    ]
    lineage = make_lineage(steps, "final")
    graph = build_lineage_graph(lineage, expand_all=True)
    layer = {node.node.id: node.layer for node in graph.nodes}
    row = {node.node.id: node.row for node in graph.nodes}
    edges = [(edge.source, edge.target) for edge in graph.edges]
    assert crossings(edges, layer, row) == 0
    label = {node.node.id: (node.node.label, node.node.id) for node in graph.nodes}
    alphabetical = {
        node: sorted((n for n in layer if layer[n] == layer[node]), key=label.__getitem__).index(node)
        for node in layer
    }
    assert crossings(edges, layer, alphabetical) > 0


def test_a_fan_never_folds_a_file_with_one_derived_from_it() -> None:
    # Regression: 'combine' uses ten micrographs, one of which ('in009') was made from another ('in000').
    # Folding all ten drew a group feeding itself through 'derive'; in009 must stay out.
    names = [f"in{n:03d}" for n in range(9)]
    steps: list[Step] = [("derive", ["in000"], ["in009"]), ("combine", [*names, "in009"], ["map"])]
    graph = build_lineage_graph(
        make_lineage(steps, "map", {name: "Micrograph" for name in [*names, "in009"]})
    )
    (group,) = graph.groups
    assert set(group.members) == {node_id(_entity(name)) for name in names}
    layer = {node.node.id: node.layer for node in graph.nodes}
    assert all(layer[edge.source] < layer[edge.target] for edge in graph.edges)


def test_a_run_writing_back_its_input_does_not_break_the_layout() -> None:
    lineage = make_lineage([("touch", ["a"], ["a", "b"])], "b")
    graph = build_lineage_graph(lineage)
    assert {node.node.id for node in graph.nodes} == {
        node_id(_entity("a")),
        node_id(_entity("b")),
        node_id(_run("touch")),
    }
    assert len(graph.edges) == 3


@st.composite
def random_lineages(draw: st.DrawFn) -> Lineage:
    """A random pipeline: each run uses some earlier files (or a fresh one) and makes new ones."""
    files = ["raw"]
    steps: list[Step] = []
    for run in range(draw(st.integers(1, 12))):
        used = draw(st.lists(st.sampled_from(files), min_size=1, max_size=4, unique=True))
        made = [f"f{run}_{n}" for n in range(draw(st.integers(1, 12)))]
        steps.append((f"run{run}", used, made))
        files += made
    classes = {name: draw(st.sampled_from(["Micrograph", "Movie"])) for name in files}
    return make_lineage(steps, files[-1], classes)


@settings(max_examples=60, deadline=None)
@given(random_lineages(), st.booleans())
def test_every_edge_goes_to_a_higher_layer_and_groups_partition(lineage: Lineage, expand_all: bool) -> None:
    graph = build_lineage_graph(lineage, expand_all=expand_all)
    layer = {node.node.id: node.layer for node in graph.nodes}
    assert all(layer[edge.source] < layer[edge.target] for edge in graph.edges)
    assert len({(node.layer, node.row) for node in graph.nodes}) == len(graph.nodes)
    members = [member for group in graph.groups for member in group.members]
    assert len(members) == len(set(members)) and graph.root not in members
    shown = set(layer)
    hidden = {member for group in graph.groups if group.id not in graph.expanded for member in group.members}
    assert len(shown - {group.id for group in graph.groups}) + len(hidden) == len(lineage.runs) + len(
        lineage.entities
    )
    document = graph_json(graph)
    counts = document["counts"]
    assert isinstance(counts, dict) and counts["shown_nodes"] == len(graph.nodes)
