"""Reading YAML that came from outside (policies, Kubernetes manifests) within bounds.

PyYAML's safe loader still lets a small document cost a lot:
- aliases: `*a` reuses a node, so nine levels of ten aliases each stand for 10^9 nodes, and
  whatever walks the result (the gate's manifest reader does) walks all of them. A 530-byte
  `List` ran the gate for 33 s into a MemoryError. Aliases are allowed (Helm output has
  them), but what they expand to is counted, and a document whose aliases stand for more than
  `ALIAS_BUDGET` nodes is refused, as go-yaml refuses "excessive aliasing";
- nesting: the composer recurses once per level, so 100,000 levels end in RecursionError.
  Nothing wasmctl reads nests beyond `MAX_DEPTH`;
- duplicate keys: PyYAML keeps the last silently, so a policy that reads `required: 2` at
  the top may mean 0. go-yaml v3 (and so kubectl) refuses them; so does wasmctl.
"""

from __future__ import annotations

from typing import Any

import yaml

from wasmctl.errors import InputError, WasmctlError

MAX_DEPTH = 100
ALIAS_BUDGET = 10_000  # nodes that aliases may stand for, over the whole document


class _Refused(yaml.YAMLError):
    """A bound was crossed; the message says which."""


class _BoundedLoader(yaml.SafeLoader):
    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._aliased: list[yaml.Node] = []

    def compose_document(self) -> Any:
        self._aliased = []
        node = super().compose_document()
        if self._aliased:
            sizes: dict[int, int] = {}
            expanded = sum(_expanded_size(n, sizes) for n in self._aliased)
            if expanded > ALIAS_BUDGET:
                raise _Refused(
                    f"its aliases expand to more than {ALIAS_BUDGET} nodes (an alias bomb?)"
                )
        return node

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            anchor = getattr(event, "anchor", None)
            if anchor in self.anchors:
                self._aliased.append(self.anchors[anchor])
            return super().compose_node(parent, index)
        self._depth += 1
        if self._depth > MAX_DEPTH:
            mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
            raise _Refused(f"nested deeper than {MAX_DEPTH} levels (line {mark.line + 1})")
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def compose_mapping_node(self, anchor: Any) -> Any:
        node = super().compose_mapping_node(anchor)
        seen: dict[str, int] = {}
        for key, _ in node.value:
            if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                line = key.start_mark.line + 1
                if key.value in seen:
                    raise _Refused(
                        f"duplicate key {key.value!r} (line {line}; first on line "
                        f"{seen[key.value]})"
                    )
                seen[key.value] = line
        return node


def _expanded_size(node: yaml.Node, sizes: dict[int, int]) -> int:
    """Nodes under `node` counted as often as aliases repeat them (memoised: linear work).
    Depth is already bounded by the composer, so recursion here is shallow."""
    known = sizes.get(id(node))
    if known is not None:
        return known
    total = 1
    if isinstance(node, yaml.SequenceNode):
        total += sum(_expanded_size(child, sizes) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        total += sum(
            _expanded_size(key, sizes) + _expanded_size(value, sizes) for key, value in node.value
        )
    sizes[id(node)] = total
    return total


def load(text: str, what: str, error: type[WasmctlError] = InputError) -> Any:
    """The one document in `text`, as Python values."""
    loader = _BoundedLoader(text)
    try:
        return loader.get_single_data()
    except yaml.YAMLError as e:
        raise error(f"{what}: not valid YAML: {e}") from None
    finally:
        loader.dispose()


def compose_all(text: str, what: str, error: type[WasmctlError] = InputError) -> list[Any]:
    """Every document in `text` as YAML nodes (which keep their line numbers)."""
    loader = _BoundedLoader(text)
    try:
        documents = []
        while loader.check_node():
            documents.append(loader.get_node())
        return documents
    except yaml.YAMLError as e:
        raise error(f"{what}: not valid YAML: {e}") from None
    finally:
        loader.dispose()
