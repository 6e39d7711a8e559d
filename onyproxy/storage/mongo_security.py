"""The MongoDB side of :class:`~onyproxy.storage.security.SecurityStore`, mixed into
:class:`~onyproxy.storage.mongo.MongoStore` (it uses the store's ``db`` and ``_guard``)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from onyproxy.storage.base import ApiKey, NotFoundError
from onyproxy.storage.mongo_documents import key_from, to_time
from onyproxy.storage.security import SecurityEvent, SecurityStore


def _event_doc(e: SecurityEvent) -> dict[str, Any]:
    doc = asdict(e)
    doc["_id"] = doc.pop("id")
    doc["at"] = to_time(e.at)
    return doc


def _event_from(doc: dict[str, Any]) -> SecurityEvent:
    return SecurityEvent(id=doc["_id"], **{k: v for k, v in doc.items() if k != "_id"})


class MongoSecurity(SecurityStore):
    """Security storage in the database of the store it is mixed into."""

    db: AsyncDatabase
    _guard: Any  # () -> context manager turning driver errors into StorageError

    async def _create_security_indexes(self, ttl_s: int) -> None:
        events = self.db.security_events
        # Security events hold hashed client addresses: they expire with usage events.
        await self._create_ttl_index("security_events", "at", ttl_s)  # type: ignore[attr-defined]
        await events.create_index([("account_id", ASCENDING), ("at", ASCENDING)],
                                  name="account_at")
        await events.create_index([("key_id", ASCENDING), ("at", ASCENDING)], name="key_at")
        # A signed-out session is kept until it would have expired, then mongod drops it.
        await self.db.revoked_sessions.create_index("until", expireAfterSeconds=0,
                                                    name="until_ttl")

    async def suspend_key(self, key_id: str, *, reason: str, by: str,
                          at: datetime) -> ApiKey:
        # The filter keeps the first suspension when several workers suspend at once.
        values = {"suspended_at": to_time(at), "suspended_by": by, "suspended_reason": reason}
        with self._guard():
            await self.db.api_keys.update_one({"_id": key_id, "suspended_at": None},
                                              {"$set": values})
            doc = await self.db.api_keys.find_one({"_id": key_id})
        if doc is None:
            raise NotFoundError("key", key_id)
        return key_from(doc)

    async def reinstate_key(self, key_id: str) -> ApiKey:
        cleared = {"suspended_at": None, "suspended_by": None, "suspended_reason": None}
        with self._guard():
            doc = await self.db.api_keys.find_one_and_update(
                {"_id": key_id}, {"$set": cleared}, return_document=ReturnDocument.AFTER)
        if doc is None:
            raise NotFoundError("key", key_id)
        return key_from(doc)

    async def add_security_event(self, event: SecurityEvent) -> None:
        with self._guard():
            await self.db.security_events.insert_one(_event_doc(event))

    async def list_security_events(
        self, *, account_id: str | None = None, key_id: str | None = None,
        kind: str | None = None, action: str | None = None, since: datetime | None = None,
        limit: int = 100, newest_first: bool = False,
    ) -> list[SecurityEvent]:
        query: dict[str, Any] = {k: v for k, v in (
            ("account_id", account_id), ("key_id", key_id), ("kind", kind), ("action", action))
            if v is not None}
        if since is not None:
            query["at"] = {"$gte": to_time(since)}
        order = DESCENDING if newest_first else ASCENDING
        with self._guard():
            cursor = self.db.security_events.find(query).sort([("at", order), ("_id", order)])
            docs = await cursor.limit(limit).to_list()
        return [_event_from(d) for d in docs]

    async def purge_security_events(self, before: datetime, *, dry_run: bool = False) -> int:
        query = {"at": {"$lt": to_time(before)}}
        with self._guard():
            if dry_run:
                return await self.db.security_events.count_documents(query)
            result = await self.db.security_events.delete_many(query)
        return result.deleted_count

    async def revoke_session(self, session_id: str, until: datetime) -> None:
        with self._guard():
            await self.db.revoked_sessions.update_one(
                {"_id": session_id}, {"$max": {"until": to_time(until)}}, upsert=True)

    async def session_revoked(self, session_id: str, now: datetime) -> bool:
        with self._guard():
            doc = await self.db.revoked_sessions.find_one(
                {"_id": session_id, "until": {"$gt": to_time(now)}})
        return doc is not None
