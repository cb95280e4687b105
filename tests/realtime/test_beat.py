"""realtime.beat: one periodic batch per event loop for all of its members."""

from __future__ import annotations

import asyncio
import logging

from realtime.beat import Beat


def recording(period: float = 0.05) -> tuple[Beat[str], list[list[str]]]:
    batches: list[list[str]] = []

    async def action(members: list[str]) -> None:
        batches.append(members)

    return Beat("test", action, lambda: period), batches


async def until(condition, timeout: float = 5.0) -> None:
    """Wait for `condition()`: a starved loop (a busy CI machine) runs beats late, not never."""
    for _ in range(int(timeout / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)


async def test_one_call_per_period_has_every_member_in_join_order():
    beat, batches = recording()
    for name in ("a", "b", "c"):
        beat.add(name)
    beat.discard("b")
    await until(lambda: len(batches) >= 2)
    assert batches[:2] == [["a", "c"], ["a", "c"]]
    assert beat.members() == ["a", "c"]
    beat.discard("a")
    beat.discard("c")


async def test_the_task_ends_without_members_and_the_next_member_starts_one():
    beat, batches = recording()
    beat.add("a")
    beat.discard("a")
    await asyncio.sleep(0.1)
    assert batches == []
    assert not [t for t in asyncio.all_tasks() if "Beat._run" in repr(t)]
    beat.add("b")
    assert [t for t in asyncio.all_tasks() if "Beat._run" in repr(t)]
    await until(lambda: batches)
    assert batches[0] == ["b"]
    beat.discard("b")


async def test_a_failing_beat_is_logged_and_the_next_one_runs(caplog):
    calls: list[list[str]] = []

    async def action(members: list[str]) -> None:
        calls.append(members)
        if len(calls) == 1:
            raise RuntimeError("redis went away")

    beat = Beat("flaky", action, lambda: 0.03)
    beat.add("a")
    await until(lambda: len(calls) >= 2)
    beat.discard("a")
    assert len(calls) >= 2
    failures = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert [r.getMessage() for r in failures] == ["flaky beat failed"]
