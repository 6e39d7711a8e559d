"""Sending notices by e-mail through the configured SMTP server (``privacy.smtp``).

The standard library's :mod:`smtplib` runs in a worker thread, one connection per batch, so
the event loop never waits on the mail server and no extra dependency is needed. STARTTLS
verifies the server's certificate with the system's trust store.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from email.message import EmailMessage
from types import TracebackType

from onyproxy.config.model import SMTPConfig


class MailError(Exception):
    """The mail server cannot be reached, refused the sign-in, or refused a message."""


def check_smtp(config: SMTPConfig) -> None:
    """Refuse to start sending without a server or sender address."""
    if not config.host:
        raise MailError("privacy.smtp.host is empty: configure the mail server first")
    if not config.sender:
        raise MailError("privacy.smtp.from is empty: set the sender address")


def message(config: SMTPConfig, to: str, subject: str, body: str) -> EmailMessage:
    """A plain-text message from the configured sender."""
    msg = EmailMessage()
    msg["From"] = config.sender
    msg["To"] = to
    msg["Subject"] = subject
    msg.set_content(body)
    return msg


class Mailer:
    """One SMTP session for a batch of messages::

        async with Mailer(config.privacy.smtp) as mailer:
            await mailer.send(msg)
    """

    def __init__(self, config: SMTPConfig) -> None:
        check_smtp(config)
        self.config = config
        self._smtp: smtplib.SMTP | None = None

    async def __aenter__(self) -> Mailer:
        self._smtp = await asyncio.to_thread(self._connect)
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._smtp is not None:
            await asyncio.to_thread(self._close, self._smtp)
            self._smtp = None

    def _connect(self) -> smtplib.SMTP:
        c = self.config
        try:
            smtp = smtplib.SMTP(c.host, c.port, timeout=c.timeout_s)
        except (OSError, smtplib.SMTPException) as exc:
            raise MailError(f"cannot reach the mail server {c.host}:{c.port}: {exc}") from None
        try:
            smtp.ehlo()
            if c.starttls:
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
            if c.username:
                smtp.login(c.username, c.password)
        except (OSError, smtplib.SMTPException) as exc:
            self._close(smtp)
            raise MailError(f"mail server {c.host}:{c.port}: {exc}") from None
        return smtp

    @staticmethod
    def _close(smtp: smtplib.SMTP) -> None:
        try:
            smtp.quit()
        except (OSError, smtplib.SMTPException):
            smtp.close()

    async def send(self, msg: EmailMessage) -> None:
        """Send one message; :class:`MailError` when the server refuses it."""
        assert self._smtp is not None, "use Mailer as an async context manager"
        try:
            await asyncio.to_thread(self._smtp.send_message, msg)
        except (OSError, smtplib.SMTPException) as exc:
            raise MailError(f"the mail server refused the message to {msg['To']}: "
                            f"{exc}") from None
