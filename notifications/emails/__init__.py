"""Email for what users missed, and hourly/daily digests (manage.py send_notification_emails).

A pass of the worker: take back claims of workers that died (`claims.recover`), look through
new notifications for those whose recipient wants them by email (`scan`: one
NotificationEmail row each, due after the kind's delay or at the next digest time), then
send what is due (`sending`, over `smtp`). Rows are claimed before sending, so concurrent
workers never take one row twice; each row is marked `sending` just before its SMTP `DATA`
and `sent` right after, so a worker killed between the two leaves that one row `in_doubt`
instead of sending it twice, and its other claimed rows to the next worker after the lease.
"""
