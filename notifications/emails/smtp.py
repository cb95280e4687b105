"""A few SMTP connections that send each email in two steps: envelope, then `DATA`.

Django's backends send a message in one call (`MAIL`, `RCPT`, `DATA`). The worker needs to
record a row as `sending` between `RCPT` and `DATA`: a worker that dies before `DATA` has
sent nothing (its row goes back to the others after the lease), and only one that dies
during `DATA` leaves an email in doubt. So for Django's SMTP backend the steps are taken on
its smtplib connection, as `EmailBackend._send` does them; any other backend (the console
one under bin/run, locmem in tests) sends whole in the second step.
"""

from __future__ import annotations

import smtplib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.core.mail.backends.base import BaseEmailBackend
from django.core.mail.backends.smtp import EmailBackend as SmtpBackend
from django.core.mail.message import sanitize_address


class SmtpConnections:
    """`size` connections, each used by one thread at a time, kept open for a whole batch."""

    def __init__(self, size: int) -> None:
        self.pool = ThreadPoolExecutor(size, thread_name_prefix="smtp")
        self.connections: list[BaseEmailBackend] = [get_connection() for _ in range(size)]

    def envelopes(self, emails: Sequence[EmailMessage | None]) -> list[Exception | None]:
        """Start a transaction for each email, email i on connection i: `MAIL` and `RCPT`.
        Return each one's error (a refused sender or recipients, a dead server) or None."""
        return self._each(emails, _envelope)

    def data(self, emails: Sequence[EmailMessage | None]) -> list[Exception | None]:
        """Send the message of each email whose envelope was accepted: `DATA`. Each list
        is by connection: a None leaves that connection alone."""
        return self._each(emails, _data)

    def abort(self, emails: Sequence[EmailMessage | None]) -> None:
        """Drop the started transactions of these emails (`RSET`): nothing is sent."""
        self._each(emails, lambda connection, _: _rset(connection))

    def _each(
        self,
        emails: Sequence[EmailMessage | None],
        step: Callable[[BaseEmailBackend, EmailMessage], None],
    ) -> list[Exception | None]:
        def run(pair: tuple[BaseEmailBackend, EmailMessage | None]) -> Exception | None:
            if pair[1] is None:
                return None
            try:
                step(pair[0], pair[1])
            except (smtplib.SMTPException, OSError) as exc:
                pair[0].close()  # reopened by the next envelope
                return exc
            return None

        return list(self.pool.map(run, zip(self.connections, emails, strict=False)))

    def __enter__(self) -> SmtpConnections:
        return self

    def __exit__(self, *exc: object) -> None:
        self.pool.shutdown(wait=True)
        for connection in self.connections:
            connection.close()


def _addresses(email: EmailMessage) -> tuple[str, list[str]]:
    encoding = email.encoding or settings.DEFAULT_CHARSET
    recipients = [sanitize_address(a, encoding) for a in email.recipients()]
    return sanitize_address(email.from_email, encoding), recipients


def _envelope(connection: BaseEmailBackend, email: EmailMessage) -> None:
    if not isinstance(connection, SmtpBackend):
        return
    connection.open()
    smtp = connection.connection
    sender, recipients = _addresses(email)
    smtp.ehlo_or_helo_if_needed()
    code, reply = smtp.mail(sender)
    if code != 250:
        smtp.rset()
        raise smtplib.SMTPSenderRefused(code, reply, sender)
    refused = {}
    for recipient in recipients:
        code, reply = smtp.rcpt(recipient)
        if code not in (250, 251):
            refused[recipient] = (code, reply)
    if len(refused) == len(recipients):
        smtp.rset()
        raise smtplib.SMTPRecipientsRefused(refused)


def _data(connection: BaseEmailBackend, email: EmailMessage) -> None:
    if not isinstance(connection, SmtpBackend):
        connection.send_messages([email])
        return
    smtp = connection.connection
    code, reply = smtp.data(email.message().as_bytes(linesep="\r\n"))
    if code != 250:
        smtp.rset()
        raise smtplib.SMTPDataError(code, reply)


def _rset(connection: BaseEmailBackend) -> None:
    if isinstance(connection, SmtpBackend) and connection.connection is not None:
        connection.connection.rset()
