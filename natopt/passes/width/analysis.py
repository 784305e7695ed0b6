"""The records of a channel-group analysis: ``ChannelGroup`` and ``GroupAnalysis``.

``natopt.passes.width.groups.channel_groups`` builds them; this module only holds them and
answers questions about them (a value's group, a unit's group, a group's kept count and what
narrowing it costs).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from natopt.ir import Cost, Graph, Node, Value
from natopt.passes.units import Unit
from natopt.passes.width.layout import Layout
from natopt.passes.width.rounding import ChannelRounding
from natopt.passes.width.slicing import Use, resized_cost, sliced_dims

__all__ = ["ChannelGroup", "GroupAnalysis"]


@dataclass(slots=True, eq=False)
class ChannelGroup:
    """One class of channels pruned together: its uses, what blocks it, and its leader."""

    root: int
    channels: int
    analysis: GroupAnalysis
    uses: list[Use] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    leader: Unit | None = None

    def role(self, role: str) -> list[Use]:
        return [u for u in self.uses if u.role == role]

    @property
    def prunable(self) -> bool:
        return not self.reasons and bool(self.role("produce"))

    def why_not(self) -> str | None:
        """Why the group cannot be pruned (``None`` when it can)."""
        if self.reasons:
            more = f" (and {len(self.reasons) - 1} more)" if len(self.reasons) > 1 else ""
            return f"its channels are fixed: {self.reasons[0]}{more}"
        if not self.role("produce"):
            return "no conv or linear layer produces its channels"
        return None

    def kept(self, fraction: float) -> int:
        """Channels kept for ``fraction``, rounded for the device (``rounding``)."""
        return self.analysis.rounding.kept(self.channels, fraction)

    def costs(self, kept: int) -> dict[Node, tuple[Cost, Cost]]:
        """(cost before, cost after) of every node the group touches when ``kept`` of its
        channels remain."""
        cuts: dict[Node, list[tuple[str, int, int]]] = {}
        for use in self.uses:
            old = self.analysis.extent(use.layout)
            new = self.analysis.extent(use.layout, {self.root: kept})
            for name, _dim in sliced_dims(use):
                cuts.setdefault(use.node, []).append((name, old, new))
        return {
            node: (resized_cost(node, ()), resized_cost(node, cuts.get(node, ())))
            for node in dict.fromkeys(use.node for use in self.uses)
        }


@dataclass(slots=True)
class GroupAnalysis:
    """The groups of one graph, the layout of every channel-carrying value, the leaders."""

    graph: Graph
    parent: list[int]
    sizes: list[int]
    layouts: dict[Value, Layout]
    rounding: ChannelRounding
    groups: list[ChannelGroup] = field(default_factory=list)
    led: dict[str, ChannelGroup] = field(default_factory=dict)  # unit name -> group it leads
    why: dict[str, str] = field(default_factory=dict)  # unit name -> why it leads none

    def find(self, space: int) -> int:
        while self.parent[space] != space:
            self.parent[space] = self.parent[self.parent[space]]
            space = self.parent[space]
        return space

    def size(self, space: int) -> int:
        return self.sizes[self.find(space)]

    def extent(self, layout: Layout, resized: dict[int, int] | None = None) -> int:
        """Length of the layout's axis, with the spaces in ``resized`` (by root) resized."""
        resized = resized or {}
        total = 0
        for space in layout.spaces:
            root = self.find(space)
            total += resized.get(root, self.sizes[root])
        return layout.outer * total * layout.inner

    def layout(self, value: Value) -> Layout | None:
        return self.layouts.get(value)

    def group_of(self, value: Value) -> ChannelGroup | None:
        """The group of a value carrying a single channel space, else ``None``."""
        layout = self.layout(value)
        if layout is None or len(layout.spaces) != 1:
            return None
        root = self.find(layout.spaces[0])
        return next((g for g in self.groups if g.root == root), None)

    def leads(self, unit: Unit) -> ChannelGroup | str:
        """The prunable group ``unit`` leads, or why it leads none."""
        return self.led.get(unit.name) or self.why.get(unit.name, "the unit leads no group")
