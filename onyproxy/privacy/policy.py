"""Privacy-policy versions: who accepted which, who has not, and notices of a change.

``privacy.policy_version`` names the version in force. An account accepts it (the dashboard,
or an admin on the person's behalf, records that with the time); while the version in force
is not the one an account accepted, it is *pending*. ``onyproxy notify policy-change`` mails
each pending account once per version (the notice is recorded, so a second run sends only to
those the first one missed). Deleted accounts are neither pending nor notified.
"""

from __future__ import annotations

from typing import Any

from onyproxy.accounts import ValidationError, get_account
from onyproxy.admin.records import timestamp
from onyproxy.config.model import GatewayConfig
from onyproxy.privacy.mail import Mailer, MailError, message
from onyproxy.privacy.subject import record
from onyproxy.storage import Account, Store, utcnow
from onyproxy.storage.privacy import PolicyStatus

PAGE = 500
# The same notice in Turkish, for readers of the KVKK's own language.
_TURKISH = ("Gizlilik politikamız {version} sürümüyle güncellendi; hesabınızla ilgili "  # noqa: RUF001
            "kişisel verilerin nasıl işlendiğini bu metinden okuyabilirsiniz.")  # noqa: RUF001
Pending = tuple[Account, PolicyStatus | None]


def current_version(config: GatewayConfig) -> str:
    """The version in force; a :class:`ValidationError` when none is configured."""
    version = config.privacy.policy_version
    if not version:
        raise ValidationError("privacy.policy_version",
                              "is not set in the config: no policy version is tracked")
    return version


async def pending_accounts(store: Store, version: str) -> list[Pending]:
    """Accounts (not deleted) that have not accepted ``version``, oldest first."""
    pending: list[Pending] = []
    offset = 0
    while page := await store.list_accounts(limit=PAGE, offset=offset):
        offset += len(page)
        live = [a for a in page if a.status != "deleted"]
        statuses = await store.policy_statuses([a.id for a in live])
        pending += [(a, statuses.get(a.id)) for a in live
                    if statuses.get(a.id) is None or statuses[a.id].version != version]
    return pending


def pending_record(account: Account, status: PolicyStatus | None) -> dict[str, Any]:
    """The JSON of one pending account."""
    return {
        "id": account.id, "email": account.email, "name": account.name,
        "status": account.status,
        "accepted_version": status.version if status else None,
        "accepted_at": timestamp(status.accepted_at) if status else None,
        "notified_version": status.notice_version if status else None,
        "notified_at": timestamp(status.notice_at) if status else None,
    }


def status_record(status: PolicyStatus) -> dict[str, Any]:
    """The JSON of an account's policy status."""
    return {"account_id": status.account_id, "accepted_version": status.version,
            "accepted_at": timestamp(status.accepted_at),
            "notified_version": status.notice_version, "notified_at": timestamp(status.notice_at)}


async def accept(store: Store, config: GatewayConfig, ident: str, *, actor: str,
                 version: str | None = None) -> PolicyStatus:
    """Record that the account accepted ``version`` (default: the one in force) now."""
    version = version or current_version(config)
    account = await get_account(store, ident)
    if account.status == "deleted":
        raise ValidationError("account", "the account is deleted")
    status = await store.record_policy_acceptance(account.id, version, utcnow())
    await record(store, actor, "policy.accept", account.id, None, version=version)
    return status


def notice(config: GatewayConfig, account: Account, version: str) -> tuple[str, str]:
    """The subject and text of a policy-change notice."""
    privacy = config.privacy
    who = privacy.controller or "We"
    where = f"Read it at {privacy.policy_url}" if privacy.policy_url else \
        "Ask us for a copy by replying to this message"
    body = (
        f"Hello {account.first_name},\n\n"
        f"{who} updated the privacy policy for your API account to version {version}. "
        f"{where}. It says what personal data we process, why, for how long, who receives "
        f"it, and how you can exercise your rights under KVKK (Law No. 6698).\n\n"
        f"{_TURKISH.format(version=version)}\n\n"
        f"You receive this because you hold an account with us; it is a legal notice, "
        f"not marketing.\n")
    return f"Privacy policy update (version {version})", body


async def notify_policy_change(store: Store, config: GatewayConfig, *, actor: str,
                               dry_run: bool = False) -> dict[str, Any]:
    """Mail every pending account not yet told about the version in force."""
    version = current_version(config)
    pending = await pending_accounts(store, version)
    # By email: accounts made in the same millisecond have no creation order in the store, and
    # a report (and the order of sending) should not change from one run to the next.
    todo = sorted(((a, s) for a, s in pending if s is None or s.notice_version != version),
                  key=lambda pair: pair[0].email)
    result: dict[str, Any] = {"version": version, "dry_run": dry_run, "pending": len(pending),
                              "already_notified": len(pending) - len(todo)}
    if dry_run:
        result["would_notify"] = [pending_record(a, s) for a, s in todo]
        return result
    sent, failed = await _send_notices(config, store, todo, version)
    await record(store, actor, "policy.notify", None, None, version=version, sent=len(sent),
                 failed=len(failed))
    return {**result, "sent": sent, "failed": failed}


async def _send_notices(config: GatewayConfig, store: Store, todo: list[Pending],
                        version: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    sent: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    if not todo:
        return sent, failed
    smtp = config.privacy.smtp
    async with Mailer(smtp) as mailer:
        for account, _ in todo:
            subject, body = notice(config, account, version)
            try:
                await mailer.send(message(smtp, account.email, subject, body))
            except MailError as exc:
                failed.append({"id": account.id, "email": account.email, "error": str(exc)})
                continue
            await store.record_policy_notice(account.id, version, utcnow())
            sent.append({"id": account.id, "email": account.email})
    return sent, failed
