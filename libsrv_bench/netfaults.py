"""What the fault-injecting proxy does to each message: plain decisions, no I/O.

The proxy (`libsrv_bench.proxy`) sits between the bench's clients and the target. For every
message it asks `LinkFaults.plan` when to pass it on: never (lost), once, or twice (a duplicated
request), each copy after its delay. The network faults of a schedule (`libsrv_bench.faults`)
become `LinkFaults` per direction with `combine`; this module knows nothing of sockets or clocks.

==================  ===========================================================================
``delay``           each message waits ARG (``20ms``; ``20ms~5ms``: plus or minus 5 ms jitter)
``loss``            each message is dropped with probability ARG (``5%``)
``duplicate``       each request is sent twice with probability ARG (the server answers both;
                    the proxy passes the client the first reply, as the network would)
``reorder``         each message is held back with probability ARG by REORDER_HOLD_MS more, so
                    that later ones overtake it
``partition``       nothing passes, either way
==================  ===========================================================================

A network fault's ARG may end with ``,requests`` or ``,replies`` to act on one direction only
(``loss@3+2:10%,replies``: the server does the work, the client never hears).
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace

REQUESTS, REPLIES = "requests", "replies"
DIRECTIONS = (REQUESTS, REPLIES)
NETWORK_KINDS = ("partition", "delay", "loss", "duplicate", "reorder")
REORDER_HOLD_MS = 10.0  # a reordered message waits this much longer than the others
_MS = re.compile(r"^(?P<ms>\d+(\.\d+)?)ms(~(?P<jitter>\d+(\.\d+)?)ms)?$")
_SHARE = re.compile(r"^(?P<pct>\d+(\.\d+)?)%$")


class NetFaultError(ValueError):
    """A network fault's argument that cannot be read; the message says what to write."""


@dataclass(frozen=True)
class LinkFaults:
    """What happens to messages in one direction while faults are on."""

    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    loss: float = 0.0  # probability, 0..1
    duplicate: float = 0.0
    reorder: float = 0.0
    partition: bool = False

    @property
    def idle(self) -> bool:
        """Every message passes at once, unchanged."""
        return self == IDLE

    def plan(self, rng: random.Random, duplicable: bool = True) -> list[float]:
        """The delays (ms) after which to pass on the copies of one message: [] when it is
        lost, two entries when it is duplicated (only where `duplicable`)."""
        if self.partition or (self.loss and rng.random() < self.loss):
            return []
        copies = 2 if duplicable and self.duplicate and rng.random() < self.duplicate else 1
        out = []
        for _ in range(copies):
            wait = self.delay_ms
            if self.jitter_ms:
                wait = max(0.0, wait + rng.uniform(-self.jitter_ms, self.jitter_ms))
            if self.reorder and rng.random() < self.reorder:
                wait += REORDER_HOLD_MS
            out.append(wait)
        return out


IDLE = LinkFaults()


@dataclass(frozen=True)
class NetFault:
    """One network fault of a schedule: its kind, value and the direction(s) it acts on."""

    kind: str
    value: float = 0.0  # delay in ms, or a probability
    jitter_ms: float = 0.0
    directions: tuple[str, ...] = DIRECTIONS


def parse_arg(kind: str, arg: str) -> NetFault:
    """The ARG of ``KIND@START+DURATION:ARG`` for a network fault (NetFaultError if wrong)."""
    value, _, direction = arg.partition(",")
    directions = DIRECTIONS
    if direction:
        if direction not in DIRECTIONS:
            raise NetFaultError(f"{kind}: the direction is requests or replies, not "
                                f"{direction!r}")
        directions = (direction,)
    if kind == "partition":
        if value:
            raise NetFaultError("partition takes no value (partition@8+2, or "
                                "partition@8+2:,requests for one direction)")
        return NetFault(kind, directions=directions)
    if kind == "delay":
        match = _MS.match(value)
        if match is None:
            raise NetFaultError(f"delay needs milliseconds, such as delay@11+2:20ms or "
                                f"delay@11+2:20ms~5ms, not {value!r}")
        return NetFault(kind, float(match["ms"]), float(match["jitter"] or 0), directions)
    match = _SHARE.match(value)
    if match is None or not 0 < float(match["pct"]) <= 100:
        raise NetFaultError(f"{kind} needs a share of messages, such as {kind}@14+2:5%, "
                            f"not {value!r}")
    if kind == "duplicate" and directions != (REQUESTS,) and direction:
        raise NetFaultError("duplicate acts on requests (a client takes one reply)")
    return NetFault(kind, float(match["pct"]) / 100, directions=(REQUESTS,)
                    if kind == "duplicate" else directions)


def combine(active: Iterable[NetFault]) -> dict[str, LinkFaults]:
    """The faults on at one moment, as what each direction does (faults of one kind that
    overlap: the strongest holds)."""
    links = dict.fromkeys(DIRECTIONS, IDLE)
    for fault in active:
        for direction in fault.directions:
            link = links[direction]
            if fault.kind == "partition":
                link = replace(link, partition=True)
            elif fault.kind == "delay":
                link = replace(link, delay_ms=max(link.delay_ms, fault.value),
                               jitter_ms=max(link.jitter_ms, fault.jitter_ms))
            else:
                link = replace(link, **{fault.kind: max(getattr(link, fault.kind),
                                                        fault.value)})
            links[direction] = link
    return links
