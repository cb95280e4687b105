"""Signals this app sends for other apps to act on (feeds listens to them).

Kept apart from notifications.signals, which wires models to services: the services send
these, and a module both import would make an import circle.
"""

from django.dispatch import Signal

# Sent by the publish service inside its transaction, with `announcement=`: other apps'
# rows (the activity feed) commit or roll back with the publish itself.
announcement_published = Signal()
# Sent by the delete service inside its transaction, with `announcement=`, before the row
# goes: other apps take out what tells of it (its activity feed item).
announcement_deleted = Signal()

# Sent with `user=` when a user's password changed or they were deactivated or deleted: every
# session of theirs is void, so each app closes that user's live connections.
credentials_changed = Signal()
