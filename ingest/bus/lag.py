"""How far a consumer group is behind on a topic (its backlog), from the bus itself: the end
offsets against the group's committed offsets.  Both adapters answer it (the SQLite log from its
tables, Kafka from the brokers' end offsets and the group coordinator's committed offsets), so it
holds for every worker of the group wherever it runs, whether it is up or not."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class Inspectable(Protocol):
    """What both bus adapters tell about their topics and groups besides the ``Bus`` port."""

    def end_offsets(self, topic: str) -> dict[int, int]: ...

    def committed(self, group: str, topic: str) -> dict[int, int]: ...


@dataclass(frozen=True)
class GroupLag:
    group: str
    topic: str
    end: int  # records ever written to the topic (sum of the partitions' end offsets)
    committed: int  # records the group has committed (sum over partitions)
    lag: int  # records written and not yet committed by the group

    @property
    def caught_up(self) -> bool:
        return self.lag == 0


def group_lag(bus: Inspectable, *, group: str, topic: str) -> GroupLag:
    """The group's backlog on ``topic``.  A partition the group has never committed counts from
    offset 0 (the embedded log keeps what a group has not committed; on Kafka it is the records the
    group would read from the earliest retained, an overcount once retention deleted some)."""
    ends = bus.end_offsets(topic)
    committed = bus.committed(group, topic)
    lag = sum(max(0, end - committed.get(partition, 0)) for partition, end in ends.items())
    return GroupLag(group=group, topic=topic, end=sum(ends.values()), committed=sum(committed.values()), lag=lag)
