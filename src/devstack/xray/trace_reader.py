"""Trace trees read back through the X-Ray API (`GetTraceSummaries`, `BatchGetTraces`).

Example (not run: needs the X-Ray API of a running stack):
    >>> trees = read_traces(boto3.client("xray"), ["1-5759e988-bd862e3fe1be46a994272793"])  # doctest: +SKIP
    >>> print(render(trees[0]))                                                             # doctest: +SKIP
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from lib.tracing.annotations import ANNOTATION_KEY
from lib.tracing.bounds import MAX_DOCUMENT_BYTES
from lib.tracing.header import ENTITY_ID, TRACE_ID

BATCH_GET_LIMIT = 5  # BatchGetTraces takes at most 5 ids per call


@dataclass
class Node:
    document: dict[str, Any]
    children: list[Node] = field(default_factory=list)

    @property
    def id(self) -> str:
        return str(self.document["id"])

    @property
    def duration_ms(self) -> float:
        end = self.document.get("end_time", self.document["start_time"])
        return (float(end) - float(self.document["start_time"])) * 1000

    def walk(self) -> Iterable[Node]:
        yield self
        for child in self.children:
            yield from child.walk()


@dataclass
class TraceTree:
    trace_id: str
    roots: list[Node]
    documents: list[dict[str, Any]]
    raw_sizes: list[int]

    def nodes(self) -> list[Node]:
        return [node for root in self.roots for node in root.walk()]

    def find(self, name: str, **annotations: Any) -> list[Node]:
        """The nodes named `name` (whose annotations hold `annotations`, when given), in tree order.

        Example:
            >>> doc = {"name": "deliver", "id": "a" * 16, "trace_id": "1-0-0", "start_time": 1,
            ...        "annotations": {"alert_id": "x"}}
            >>> tree = build_tree("1-0-0", [json.dumps(doc)])
            >>> len(tree.find("deliver", alert_id="x")), len(tree.find("deliver", alert_id="y"))
            (1, 0)
        """
        return [node for node in self.nodes() if node.document.get("name") == name and all(
            node.document.get("annotations", {}).get(key) == value for key, value in annotations.items())]

    @property
    def orphans(self) -> list[dict[str, Any]]:
        ids = {node.id for node in self.nodes()}
        return [doc for doc in self.documents if doc.get("parent_id") and doc["parent_id"] not in ids]


def flatten(document: dict[str, Any], trace_id: str, parent_id: str | None = None) -> Iterable[dict[str, Any]]:
    """One segment document and every subsegment nested in it, each as a document of its own."""
    children = document.get("subsegments", [])
    flat = {key: value for key, value in document.items() if key != "subsegments"}
    flat.setdefault("trace_id", trace_id)
    if parent_id is not None:
        flat.setdefault("parent_id", parent_id)
    yield flat
    for child in children:
        yield from flatten(child, trace_id, flat["id"])


def build_tree(trace_id: str, raw_documents: Sequence[str]) -> TraceTree:
    documents = [doc for raw in raw_documents for doc in flatten(json.loads(raw), trace_id)]
    nodes = {doc["id"]: Node(doc) for doc in documents}
    roots: list[Node] = []
    for doc in sorted(documents, key=lambda d: float(d.get("start_time", 0))):
        parent = nodes.get(doc.get("parent_id", ""))
        if parent is not None and parent is not nodes[doc["id"]]:
            parent.children.append(nodes[doc["id"]])
        else:
            roots.append(nodes[doc["id"]])
    return TraceTree(trace_id, roots, documents, [len(raw.encode()) for raw in raw_documents])


def read_traces(xray: Any, trace_ids: Sequence[str]) -> list[TraceTree]:
    trees = []
    for start in range(0, len(trace_ids), BATCH_GET_LIMIT):
        response = xray.batch_get_traces(TraceIds=list(trace_ids[start:start + BATCH_GET_LIMIT]))
        for trace in response["Traces"]:
            trees.append(build_tree(trace["Id"], [segment["Document"] for segment in trace["Segments"]]))
    return trees


def recent_trace_ids(xray: Any, since: dt.datetime, until: dt.datetime | None = None) -> list[str]:
    until = until or dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)
    ids: list[str] = []
    kwargs: dict[str, Any] = {"StartTime": since, "EndTime": until}
    while True:
        response = xray.get_trace_summaries(**kwargs)
        ids.extend(summary["Id"] for summary in response.get("TraceSummaries", []))
        token = response.get("NextToken")
        if not token:
            return ids
        kwargs["NextToken"] = token


def document_problems(tree: TraceTree) -> list[str]:
    """What would make a document invalid, unreadable or unindexable in X-Ray."""
    problems = []
    for doc in tree.documents:
        where = f"{doc.get('name')}/{doc.get('id')}"
        for name in ("name", "id", "start_time", "trace_id"):
            if name not in doc:
                problems.append(f"{where}: missing {name}")
        if not ENTITY_ID.match(str(doc.get("id", ""))):
            problems.append(f"{where}: id is not 16 hex")
        if not TRACE_ID.match(str(doc.get("trace_id", ""))):
            problems.append(f"{where}: trace_id malformed")
        for key in doc.get("annotations", {}):
            if not ANNOTATION_KEY.match(key):
                problems.append(f"{where}: annotation key {key!r} invalid")
    problems.extend(f"orphan {doc['name']}/{doc['id']} -> {doc['parent_id']}" for doc in tree.orphans)
    problems.extend(f"document of {size} bytes over 64 KB" for size in tree.raw_sizes if size > MAX_DOCUMENT_BYTES)
    return problems




def render(tree: TraceTree, max_siblings: int | None = None, keep: Callable[[Node], bool] | None = None) -> str:
    """service → segment → subsegment, with durations, faults and annotations.

    `max_siblings`: show at most that many siblings of one name (an SNS fan-out of 40 messages
    shows the first ones and "… 38 more"); a sibling with a fault or error in its subtree is
    always shown, and so is one with a node `keep` accepts (e.g. the branch that sent an email).
    """
    lines = [f"trace {tree.trace_id}"]

    def visit(node: Node, depth: int) -> None:
        doc = node.document
        flags = [flag for flag in ("fault", "error", "throttle") if doc.get(flag)]
        origin = f" [{doc['origin']}]" if doc.get("origin") else ""
        namespace = f" ({doc['namespace']})" if doc.get("namespace") else ""
        annotations = doc.get("annotations") or {}
        shown = " ".join(f"{k}={v}" for k, v in list(annotations.items())[:8])
        line = f"{'  ' * depth}- {doc.get('name')}{origin}{namespace} {node.duration_ms:.1f} ms"
        if flags:
            line += " " + ",".join(f.upper() for f in flags)
        if shown:
            line += f"  {{{shown}}}"
        lines.append(line)
        shown_by_name: dict[str, int] = {}
        hidden_by_name: dict[str, int] = {}
        for child in sorted(node.children, key=lambda n: float(n.document.get("start_time", 0))):
            name = str(child.document.get("name"))
            flagged = any(any(child_node.document.get(f) for f in ("fault", "error"))
                          or (keep is not None and keep(child_node)) for child_node in child.walk())
            if max_siblings is not None and shown_by_name.get(name, 0) >= max_siblings and not flagged:
                hidden_by_name[name] = hidden_by_name.get(name, 0) + 1
                continue
            shown_by_name[name] = shown_by_name.get(name, 0) + 1
            visit(child, depth + 1)
        for name, hidden in hidden_by_name.items():
            lines.append(f"{'  ' * (depth + 1)}- … {hidden} more {name}")

    for root in tree.roots:
        visit(root, 1)
    return "\n".join(lines)


def silent_failures(tree: TraceTree) -> list[dict[str, Any]]:
    """The silent-failure-path subsegments (FR-002, annotation `silent_failure_path`) marked error or fault.

    Example:
        >>> doc = {"name": "breaker_load", "id": "a" * 16, "trace_id": "1-0-0", "start_time": 1, "error": True,
        ...        "annotations": {"silent_failure_path": "circuit_breaker_load"}}
        >>> [failure["name"] for failure in silent_failures(build_tree("1-0-0", [json.dumps(doc)]))]
        ['breaker_load']
    """
    return [node.document for node in tree.nodes()
            if node.document.get("annotations", {}).get("silent_failure_path")
            and (node.document.get("error") or node.document.get("fault"))]


def ancestors(tree: TraceTree, node: Node) -> list[str]:
    """Names of the node's ancestors, nearest first."""
    by_id = {each.id: each for each in tree.nodes()}
    names = []
    parent = by_id.get(str(node.document.get("parent_id", "")))
    while parent is not None:
        names.append(str(parent.document.get("name")))
        parent = by_id.get(str(parent.document.get("parent_id", "")))
    return names
