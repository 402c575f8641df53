"""``scipion-kg ontology check``: the ontology parses, obeys its SPARQL rules, and HermiT finds it
consistent with no unsatisfiable class."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pyoxigraph as ox

from .errors import OntologyError
from .reasoner import ReasonerResult, run_hermit
from .vocabulary import load_rdflib_graph, module_files, ontology_dir, parse_modules

__all__ = ["CheckReport", "RuleViolation", "check_ontology", "run_rules"]


@dataclass(frozen=True)
class RuleViolation:
    rule: str
    term: str
    message: str


@dataclass
class CheckReport:
    files: list[Path]
    triples: int
    violations: list[RuleViolation] = field(default_factory=list)
    reasoner: ReasonerResult | None = None

    @property
    def ok(self) -> bool:
        reasoner_ok = self.reasoner is None or (self.reasoner.consistent and not self.reasoner.unsatisfiable)
        return not self.violations and reasoner_ok

    def lines(self) -> list[str]:
        out = [f"parsed {len(self.files)} modules, {self.triples} triples"]
        if self.violations:
            out.append(f"{len(self.violations)} rule violations:")
            out.extend(f"  {v.rule}: {v.term}: {v.message}" for v in self.violations)
        else:
            out.append("SPARQL rules: no violation")
        if self.reasoner is not None:
            out.append(self.reasoner.message)
        return out


def rule_files(directory: Path | None = None) -> list[Path]:
    return sorted(((directory or ontology_dir()) / "sparql").glob("*-violation.rq"))


def run_rules(quads: list[ox.Quad], rules: list[Path]) -> list[RuleViolation]:
    """Run every ``*-violation.rq`` rule; each returned row (``?term``, ``?message``) is a violation."""
    store = ox.Store()
    store.extend(ox.Quad(q.subject, q.predicate, q.object, ox.DefaultGraph()) for q in quads)
    violations: list[RuleViolation] = []
    for rule in rules:
        try:
            solutions = store.query(rule.read_text(encoding="utf-8"))
        except SyntaxError as error:
            raise OntologyError(f"{rule}: SPARQL syntax error: {error}") from error
        assert isinstance(solutions, ox.QuerySolutions)
        for solution in solutions:
            term, message = solution["term"], solution["message"]
            violations.append(
                RuleViolation(
                    rule.stem,
                    term.value if term is not None else "?",
                    message.value if message is not None else "violation",
                )
            )
    return violations


def check_ontology(directory: Path | None = None, *, reasoner: bool = True) -> CheckReport:
    """Parse every module (rdflib and pyoxigraph), run the rules, and optionally run HermiT."""
    files = module_files(directory)
    graph = load_rdflib_graph(files)
    quads = parse_modules(files)
    report = CheckReport(files=files, triples=len(graph))
    report.violations = run_rules(quads, rule_files(directory))
    if reasoner:
        report.reasoner = run_hermit(graph)
    return report
