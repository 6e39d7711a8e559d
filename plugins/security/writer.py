"""Writing security events and suspensions in the background, never on a request's path.

A request that produced a finding only puts the event on a bounded queue; one task per
gateway process writes them in order. For an event with action ``suspend`` that is: suspend
the key in the store, append the audit entry (actor ``system:security``, with the account,
key, decision, reason and evidence that ``onyproxy subject object`` needs to contest it),
store the event, and make this worker's auth plugin forget its cached keys so the suspension
applies here at once (other workers re-read the key within the auth plugin's
``cache_ttl_s``). Each step is remembered on the pending item, so a retry after a store
outage repeats none that succeeded (the audit log is append-only).

When another worker suspended the key first (the store keeps the first suspension), the event
is stored with action ``log`` and no second audit entry is written.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from onyproxy.logs import log_crash
from onyproxy.storage import AuditEntry, ConflictError, NotFoundError, SecurityEvent, StorageError

log = logging.getLogger("onyproxy.security")

ACTOR = "system:security"
DECISION = "API key suspended automatically by the security monitor"
MAX_PENDING = 10_000
RETRY_S = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)  # waits between tries while the store is down
# About an hour of an unreachable store per event; an event that fails for another reason
# (a bug, a record the store refuses) must not block the queue behind it for ever.
MAX_TRIES = 125


@dataclass(slots=True)
class Pending:
    """An event on its way to the store, and the steps already done for it."""

    event: SecurityEvent
    done: set[str] = field(default_factory=set)


class EventWriter:
    """The queue of events and the task that writes them."""

    def __init__(self, store: Callable[[], Any], forget_keys: Callable[[], None],
                 sleep: Callable[[float], Any] = asyncio.sleep) -> None:
        self._store = store  # called per write: the gateway's store may be replaced
        self._forget_keys = forget_keys
        self._sleep = sleep
        self._queue: asyncio.Queue[Pending] = asyncio.Queue(maxsize=MAX_PENDING)
        self._task: asyncio.Task[None] | None = None
        self._current: Pending | None = None  # taken off the queue, not finished yet
        self.dropped = 0

    def submit(self, event: SecurityEvent) -> None:
        """Queue ``event`` for writing; O(1), no I/O. A full queue drops it (it was logged)."""
        try:
            self._queue.put_nowait(Pending(event))
        except asyncio.QueueFull:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.error("security: %d events not stored: the store has been unreachable "
                          "too long (they are in the log)", self.dropped)

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="onyproxy-security-writer")

    async def stop(self) -> None:
        """Stop the task, then give what is left (the event it was busy with first) one try
        each; its finished steps are not repeated."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        left = [self._current] if self._current is not None else []
        while not self._queue.empty():
            left.append(self._queue.get_nowait())
        for item in left:
            try:
                await self.write(item)
            except StorageError:
                log.error("security: %d events not stored at shutdown (they are in the log)",
                          len(left))
                return

    async def drain(self) -> None:
        """Wait until everything queued so far was written (tests, shutdown)."""
        await self._queue.join()

    async def _run(self) -> None:
        while True:
            self._current = item = await self._queue.get()
            try:
                await self._write_with_retries(item)
                self._current = None
            finally:
                self._queue.task_done()

    async def _write_with_retries(self, item: Pending) -> None:
        for attempt in range(MAX_TRIES):
            try:
                await self.write(item)
                return
            except StorageError:
                await self._sleep(RETRY_S[min(attempt, len(RETRY_S) - 1)])
            except Exception as exc:  # a bug must not end the task
                log_crash("security event writer", exc)
                return
        log.error("security: gave up storing event %s after repeated store failures",
                  item.event.id)

    async def write(self, item: Pending) -> None:
        """Do the steps of ``item`` not done yet; raises :class:`StorageError` to retry."""
        event, store = item.event, self._store()
        if event.action == "suspend" and "suspend" not in item.done:
            await self._suspend(store, item)
        if "event" not in item.done:
            with contextlib.suppress(ConflictError):  # stored by an earlier, cut-short try
                await store.add_security_event(event)
            item.done.add("event")

    async def _suspend(self, store: Any, item: Pending) -> None:
        event = item.event
        assert event.key_id is not None
        try:
            key = await store.suspend_key(event.key_id, reason=event.reason, by=ACTOR,
                                          at=event.at)
        except NotFoundError:  # deleted meanwhile: nothing to suspend
            key = None
        if key is None or key.suspended_at != event.at or key.suspended_by != ACTOR:
            event.action = "log"  # someone else suspended it first (or it is gone)
            item.done.add("suspend")
            return
        if "audit" not in item.done:
            await store.append_audit(suspension_audit(event))
            item.done.add("audit")
        item.done.add("suspend")
        self._forget_keys()


def suspension_audit(event: SecurityEvent) -> AuditEntry:
    """The audit entry of an automatic suspension: what ``subject object`` contests."""
    return AuditEntry(
        actor=ACTOR, action="key.suspend", target=event.key_id, at=event.at,
        details={"account_id": event.account_id, "key_id": event.key_id,
                 "decision": DECISION, "kind": event.kind, "reason": event.reason,
                 "evidence": event.evidence, "event_id": event.id})
