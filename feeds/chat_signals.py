"""Wire chat models to other apps (mentions → notifications)."""


def connect() -> None:
    pass
