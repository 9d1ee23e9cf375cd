# SPDX-License-Identifier: GPL-3.0-or-later
"""Shot names as editorial uses them: ``SQ010_SH0010``. Pure Python.

New shots are numbered in steps of 10 so a shot can later be inserted between two
(``SH0015`` between ``SH0010`` and ``SH0020``), the way shot lists are kept on set.
"""

import re
from dataclasses import dataclass

STEP = 10
_PATTERN = re.compile(r"^SQ(?P<seq>\d{3,})_SH(?P<shot>\d{4,})$")


@dataclass(frozen=True, order=True)
class ShotName:
    sequence: int
    shot: int

    def __str__(self) -> str:
        return f"SQ{self.sequence:03d}_SH{self.shot:04d}"


def parse(name: str) -> ShotName | None:
    """The sequence and shot numbers of ``name``, or None when it is not ``SQnnn_SHnnnn``."""
    match = _PATTERN.match(name)
    if not match:
        return None
    return ShotName(int(match["seq"]), int(match["shot"]))


def is_valid(name: str) -> bool:
    return parse(name) is not None


def next_name(existing: list[str], sequence: int = 10) -> str:
    """The name for a shot appended after every numbered shot of ``sequence``."""
    numbers = [p.shot for p in map(parse, existing) if p and p.sequence == sequence]
    last = max(numbers, default=0)
    return str(ShotName(sequence, (last // STEP + 1) * STEP))


def between(before: str | None, after: str | None, existing: list[str]) -> str:
    """A free name that sorts between ``before`` and ``after`` in the same sequence.

    ``after=None`` appends; ``before=None`` inserts ahead of ``after``. Raises ValueError
    with a message for the user when there is no number left between the two.
    """
    b = parse(before) if before else None
    a = parse(after) if after else None
    if before and not b or after and not a:
        raise ValueError("shot names must look like SQ010_SH0010 to number a new shot between them")
    sequence = (b or a).sequence if (b or a) else 10
    if a is None:
        return next_name(existing, sequence)
    if b is not None and b.sequence != a.sequence:
        return next_name(existing, b.sequence)
    low = b.shot if b else 0
    taken = {p.shot for p in map(parse, existing) if p and p.sequence == sequence}
    # Prefer the midpoint rounded to a multiple of 5, then any free number.
    mid = (low + a.shot) // 2
    candidates = [mid - mid % 5, mid] + list(range(low + 1, a.shot))
    for number in candidates:
        if low < number < a.shot and number not in taken:
            return str(ShotName(sequence, number))
    raise ValueError(f"no shot number left between {before or 'the start'} and {after}; rename shots to make room")
