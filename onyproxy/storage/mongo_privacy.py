"""The MongoDB side of :class:`~onyproxy.storage.privacy.PrivacyStore`, mixed into
:class:`~onyproxy.storage.mongo.MongoStore` (it uses the store's ``db`` and ``_guard``).

Only single-document writes and plain queries are used, so it works on a standalone mongod
as on a replica set. Multi-document changes (erasure, purges) are idempotent instead of
transactional: running them again completes what an interrupted run left.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from onyproxy.storage.audit_chain import seal
from onyproxy.storage.base import AuditEntry, ConflictError, NotFoundError, StorageError
from onyproxy.storage.mongo_documents import audit_doc, audit_from, to_time
from onyproxy.storage.privacy import (
    AccountPurge,
    Erasure,
    Objection,
    ObjectionStatus,
    PolicyStatus,
    PrivacyStore,
    Recipient,
)

# A lost race for the next chain number costs one retry; this many in a row means something
# else is wrong (e.g. a clock or index problem) and is reported rather than looped on.
APPEND_TRIES = 50
ID_BATCH = 1000


def _objection_doc(o: Objection) -> dict[str, Any]:
    doc = asdict(o)
    doc["_id"] = doc.pop("id")
    return doc


def _objection_from(doc: dict[str, Any]) -> Objection:
    return Objection(id=doc["_id"], **{k: v for k, v in doc.items() if k != "_id"})


def _policy_from(doc: dict[str, Any]) -> PolicyStatus:
    return PolicyStatus(account_id=doc["_id"], version=doc.get("version"),
                        accepted_at=doc.get("accepted_at"),
                        notice_version=doc.get("notice_version"), notice_at=doc.get("notice_at"))


def _is_seq_conflict(exc: DuplicateKeyError) -> bool:
    return "seq" in ((exc.details or {}).get("keyPattern") or {})


class MongoPrivacy(PrivacyStore):
    """Privacy storage in the database of the store it is mixed into."""

    db: AsyncDatabase
    _guard: Any  # () -> context manager turning driver errors into StorageError

    async def _create_privacy_indexes(self) -> None:
        db = self.db
        # Sparse: entries written before the chain existed have no seq and must not collide.
        await db.audit_log.create_index("seq", unique=True, sparse=True, name="seq_unique")
        await db.accounts.create_index([("status", ASCENDING), ("deleted_at", ASCENDING)],
                                       name="status_deleted")
        await db.billing_records.create_index("month", name="month")
        await db.objections.create_index([("status", ASCENDING), ("created_at", ASCENDING)],
                                         name="status_created")
        await db.objections.create_index([("account_id", ASCENDING), ("created_at", ASCENDING)],
                                         name="account_created")

    def _guarded(self) -> AbstractContextManager[None]:
        return self._guard()

    # retention -----------------------------------------------------------------------------
    async def purge_usage_events(self, before: datetime, *, dry_run: bool = False) -> int:
        # The TTL index expires most of these already; this catches what its once-a-minute
        # monitor has not reached yet, and retention shortened since the index was made.
        query = {"created_at": {"$lt": to_time(before)}}
        with self._guarded():
            if dry_run:
                return await self.db.usage_events.count_documents(query)
            return (await self.db.usage_events.delete_many(query)).deleted_count

    async def purge_deleted_accounts(
        self, deleted_before: datetime, *, dry_run: bool = False
    ) -> AccountPurge:
        query = {"status": "deleted", "deleted_at": {"$lt": to_time(deleted_before)}}
        with self._guarded():
            ids = [d["_id"] for d in await self.db.accounts.find(query, {"_id": 1}).to_list()]
        purge = AccountPurge(accounts=len(ids))
        for start in range(0, len(ids), ID_BATCH):
            keys, events = await self._purge_accounts(ids[start:start + ID_BATCH], dry_run)
            purge.keys += keys
            purge.security_events += events
        return purge

    async def _purge_accounts(self, ids: list[str], dry_run: bool) -> tuple[int, int]:
        db, owned = self.db, {"account_id": {"$in": ids}}
        with self._guarded():
            if dry_run:
                return (await db.api_keys.count_documents(owned),
                        await db.security_events.count_documents(owned))
            await db.usage_events.update_many(owned, {"$set": {"ip": None, "user_agent": None}})
            await db.objections.delete_many(owned)
            await db.policy_acceptances.delete_many({"_id": {"$in": ids}})
            events = await db.security_events.delete_many(owned)
            keys = await db.api_keys.delete_many(owned)
            # Last: until the account is gone, a rerun finds it and finishes the rest.
            await db.accounts.delete_many({"_id": {"$in": ids}, "status": "deleted"})
        return keys.deleted_count, events.deleted_count

    async def purge_billing_records(self, before_month: str, *, dry_run: bool = False) -> int:
        query = {"month": {"$lt": before_month}}
        with self._guarded():
            if dry_run:
                return await self.db.billing_records.count_documents(query)
            return (await self.db.billing_records.delete_many(query)).deleted_count

    async def claim_lease(self, name: str, holder: str, *, now: datetime,
                          until: datetime) -> bool:
        free = {"_id": name, "$or": [{"until": {"$lte": to_time(now)}}, {"holder": holder}]}
        try:
            with self._guarded():
                # An upsert whose filter misses the existing lease tries to insert its _id
                # again, which the unique _id refuses: that is "someone else holds it".
                await self.db.job_leases.update_one(
                    free, {"$set": {"holder": holder, "until": to_time(until)}}, upsert=True)
        except ConflictError:
            return False
        return True

    # data subjects -------------------------------------------------------------------------
    async def usage_recipients(self, account_id: str) -> list[Recipient]:
        pipeline = [
            {"$match": {"account_id": account_id, "provider": {"$ne": ""}}},
            {"$group": {"_id": "$provider", "requests": {"$sum": 1},
                        "first": {"$min": "$created_at"}, "last": {"$max": "$created_at"}}},
            {"$sort": {"_id": 1}},
        ]
        with self._guarded():
            docs = await (await self.db.usage_events.aggregate(pipeline)).to_list()
        return [Recipient(d["_id"], d["requests"], d["first"], d["last"]) for d in docs]

    async def erase_subject(self, account_id: str, *, email: str, at: datetime) -> Erasure:
        db, when = self.db, to_time(at)
        mine = {"account_id": account_id}
        with self._guarded():
            found = await db.accounts.update_one({"_id": account_id}, {"$set": {
                "first_name": "erased", "last_name": "", "email": email, "phone": None,
                "company": None, "billing": None, "status": "deleted", "updated_at": when}})
            if found.matched_count == 0:
                raise NotFoundError("account", account_id)
            # Keep an earlier deletion time: it is when the retention period started.
            await db.accounts.update_one({"_id": account_id, "deleted_at": None},
                                         {"$set": {"deleted_at": when}})
            keys = await db.api_keys.update_many(mine, {"$set": {"name": "erased",
                                                                 "revoked": True}})
            await db.api_keys.update_many({**mine, "revoked_at": None},
                                          {"$set": {"revoked_at": when}})
            events = await db.usage_events.update_many(
                {**mine, "$or": [{"ip": {"$ne": None}}, {"user_agent": {"$ne": None}}]},
                {"$set": {"ip": None, "user_agent": None}})
            security = await db.security_events.update_many(
                {**mine, "client": {"$ne": None}}, {"$set": {"client": None}})
        return Erasure(keys_revoked=keys.matched_count, usage_events=events.modified_count,
                       security_events=security.modified_count)

    async def add_objection(self, objection: Objection) -> Objection:
        doc = _objection_doc(objection)
        for name in ("created_at", "decided_at"):
            doc[name] = to_time(doc[name])
        with self._guarded():
            await self.db.objections.insert_one(doc)
        return _objection_from(doc)

    async def get_objection(self, objection_id: str) -> Objection | None:
        with self._guarded():
            doc = await self.db.objections.find_one({"_id": objection_id})
        return _objection_from(doc) if doc else None

    async def list_objections(
        self, *, account_id: str | None = None, status: ObjectionStatus | None = None,
        limit: int = 1000,
    ) -> list[Objection]:
        query = {k: v for k, v in (("account_id", account_id), ("status", status)) if v}
        with self._guarded():
            cursor = self.db.objections.find(query).sort([("created_at", 1), ("_id", 1)])
            docs = await cursor.limit(limit).to_list()
        return [_objection_from(d) for d in docs]

    async def resolve_objection(
        self, objection_id: str, *, status: ObjectionStatus, by: str, resolution: str,
        at: datetime,
    ) -> Objection:
        values = {"status": status, "resolved_by": by, "resolution": resolution,
                  "resolved_at": to_time(at)}
        with self._guarded():
            doc = await self.db.objections.find_one_and_update(
                {"_id": objection_id}, {"$set": values}, return_document=ReturnDocument.AFTER)
        if doc is None:
            raise NotFoundError("objection", objection_id)
        return _objection_from(doc)

    # privacy policy ------------------------------------------------------------------------
    async def record_policy_acceptance(self, account_id: str, version: str,
                                       at: datetime) -> PolicyStatus:
        with self._guarded():
            if await self.db.accounts.count_documents({"_id": account_id}, limit=1) == 0:
                raise NotFoundError("account", account_id)
            doc = await self.db.policy_acceptances.find_one_and_update(
                {"_id": account_id}, {"$set": {"version": version, "accepted_at": to_time(at)}},
                upsert=True, return_document=ReturnDocument.AFTER)
        return _policy_from(doc)

    async def record_policy_notice(self, account_id: str, version: str, at: datetime) -> None:
        with self._guarded():
            await self.db.policy_acceptances.update_one(
                {"_id": account_id},
                {"$set": {"notice_version": version, "notice_at": to_time(at)}}, upsert=True)

    async def policy_statuses(self, account_ids: Sequence[str]) -> dict[str, PolicyStatus]:
        ids = list(account_ids)
        found: dict[str, PolicyStatus] = {}
        with self._guarded():
            for start in range(0, len(ids), ID_BATCH):
                query = {"_id": {"$in": ids[start:start + ID_BATCH]}}
                for doc in await self.db.policy_acceptances.find(query).to_list():
                    found[doc["_id"]] = _policy_from(doc)
        return found

    # audit chain ---------------------------------------------------------------------------
    async def _append_chained(self, entry: AuditEntry) -> None:
        """Append ``entry`` as the chain's next link. Two writers that read the same head
        both try to insert the same ``seq``; the unique index lets one win, the other
        re-reads the head and tries again, so the chain never forks."""
        for _ in range(APPEND_TRIES):
            with self._guarded():
                head = await self.db.audit_log.find_one(
                    {"seq": {"$gt": 0}}, {"seq": 1, "hash": 1}, sort=[("seq", DESCENDING)])
                seal(entry, head["seq"] if head else None, head["hash"] if head else None,
                     self.audit_key)
                try:
                    await self.db.audit_log.insert_one(audit_doc(entry))
                    return
                except DuplicateKeyError as exc:
                    if not _is_seq_conflict(exc):
                        raise
        raise StorageError(f"audit append lost the race for the next entry {APPEND_TRIES} "
                           f"times in a row")

    async def list_audit_chain(self, *, after_seq: int = 0,
                               limit: int = 1000) -> list[AuditEntry]:
        with self._guarded():
            cursor = self.db.audit_log.find({"seq": {"$gt": after_seq}}).sort("seq", 1)
            docs = await cursor.limit(limit).to_list()
        return [audit_from(d) for d in docs]

    async def count_audit(self) -> int:
        with self._guarded():
            return await self.db.audit_log.count_documents({})

    async def first_unchained_audit(self) -> AuditEntry | None:
        with self._guarded():
            doc = await self.db.audit_log.find_one({"seq": None},
                                                   sort=[("at", 1), ("_id", 1)])
        return audit_from(doc) if doc else None
