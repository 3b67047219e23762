"""What a workload found, whether it met its target, and the two ways it is written out.

A result is the catlog figure, the peer figures from the same run, and a target stated as a ratio
to one of those peers (or, for memory, as an absolute bound). The markdown table is for people and
bench/README.md; the JSON keeps every repetition and the machine it ran on, for comparing runs.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Figure:
    """One contender's number (the best repetition, or the median of interleaved rounds) and
    every repetition."""

    label: str
    value: float
    unit: str
    repetitions: tuple[float, ...] = ()
    median: bool = False
    """``value`` is the median of ``repetitions``; the table then shows their range beside it."""


@dataclass(frozen=True, slots=True)
class Target:
    """``bound`` applies to the ratio catlog / ``peer``, or to catlog's own value if ``absolute``.

    ``at_least`` says which side of the bound passes: throughput must reach it, time and memory
    must stay under it.
    """

    bound: float
    at_least: bool
    absolute: bool = False

    def passes(self, number: float) -> bool:
        return number >= self.bound if self.at_least else number <= self.bound


@dataclass(frozen=True, slots=True)
class Outcome:
    workload: str
    catlog: Figure
    peers: tuple[Figure, ...]
    ratio_peer: str | None = None
    """The peer in the ratio column (and the target's, unless the target is absolute)."""
    target: Target | None = None
    notes: tuple[str, ...] = field(default=())

    def peer(self, label: str) -> Figure:
        return next(p for p in self.peers if p.label == label)

    @property
    def ratio(self) -> float | None:
        if self.ratio_peer is None:
            return None
        return self.catlog.value / self.peer(self.ratio_peer).value

    @property
    def met(self) -> bool | None:
        if self.target is None:
            return None
        if self.target.absolute:
            return self.target.passes(self.catlog.value)
        ratio = self.ratio
        assert ratio is not None, "a relative target needs a ratio_peer"
        return self.target.passes(ratio)

    def target_text(self) -> str:
        if self.target is None:
            return "-"
        sign = ">=" if self.target.at_least else "<="
        if self.target.absolute:
            return f"{sign} {_number(self.target.bound, self.catlog.unit)}"
        return f"{sign} {self.target.bound:g}x {self.ratio_peer}"


def _number(value: float, unit: str) -> str:
    if unit == "s":
        return f"{value:.3f} s"
    if unit == "B/key":
        return f"{value:.0f} B/key"
    if unit == "x live":
        return f"{value:.3f}x live"
    if unit == "ms":
        return f"{value:.2f} ms"
    if value >= 10_000:
        return f"{value / 1000:,.0f}k {unit}"
    return f"{value:,.0f} {unit}"


def _figure(figure: Figure) -> str:
    text = _number(figure.value, figure.unit)
    if figure.median and len(figure.repetitions) > 1:
        low, high = min(figure.repetitions), max(figure.repetitions)
        text += f" ({_bare(low, figure.unit)}-{_bare(high, figure.unit)})"
    return text


def _bare(value: float, unit: str) -> str:
    """A number as :func:`_number` writes it, without its unit (for a range beside a figure)."""
    return _number(value, unit).removesuffix(unit).strip()


def markdown(outcomes: list[Outcome]) -> str:
    """The results table: one row per workload, peers in one cell, ratio against the target peer."""
    lines = [
        "| Workload | catlog | Peers (same run) | Ratio | Target | Met |",
        "|---|---|---|---|---|---|",
    ]
    for o in outcomes:
        peers = "; ".join(f"{p.label}: {_figure(p)}" for p in o.peers) or "-"
        ratio = "-" if o.ratio is None else f"{o.ratio:.2f}x {o.ratio_peer}"
        met = {None: "-", True: "met", False: "**not met**"}[o.met]
        cells = [o.workload, _figure(o.catlog), peers, ratio, o.target_text(), met]
        lines.append(f"| {' | '.join(cells)} |")
    notes = [f"- {o.workload}: {note}" for o in outcomes for note in o.notes]
    if notes:
        lines += ["", "Notes:", *notes]
    return "\n".join(lines)


def comparison(outcomes: list[Outcome], label: str) -> str:
    """catlog against the checkout ``label`` (``catlog@before``), row by row of the main table.

    Each row pairs catlog's figure with the same contender run by the other checkout, and gives
    both ratios to the row's peer; where that peer is a catlog contender itself (``catlog scan
    only``, one writer) the other checkout's ratio is to its own.
    """
    lines = [
        f"catlog against {label}, interleaved in the same run (catlog / {label}: above 1 is "
        "faster for rates, slower for times and bytes):",
        "",
        f"| Workload | catlog | {label} | catlog / {label} | Ratio, catlog | Ratio, {label} |",
        "|---|---|---|---|---|---|",
    ]
    for o in outcomes:
        theirs = o.catlog.label.replace("catlog", label, 1)
        other = next((p for p in o.peers if p.label == theirs), None)
        if other is None:
            continue
        ratios = ["-", "-"]
        if o.ratio_peer is not None:
            peer = o.ratio_peer
            if peer.startswith("catlog"):
                peer = peer.replace("catlog", label, 1)
            base = o.peer(o.ratio_peer).value
            mirrored = next((p for p in o.peers if p.label == peer), None)
            ratios = [
                f"{o.catlog.value / base:.2f}x {o.ratio_peer}",
                "-" if mirrored is None else f"{other.value / mirrored.value:.2f}x {peer}",
            ]
        change = f"{o.catlog.value / other.value:.2f}x"
        cells = [o.workload, _figure(o.catlog), _figure(other), change, *ratios]
        lines.append(f"| {' | '.join(cells)} |")
    return "\n".join(lines)


def write_json(path: Path, outcomes: list[Outcome], context: dict[str, object]) -> None:
    """Everything in the table plus every repetition, under ``context`` (machine, sizes, argv)."""
    rows = [{**asdict(o), "ratio": o.ratio, "met": o.met} for o in outcomes]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**context, "outcomes": rows}, indent=2) + "\n")
