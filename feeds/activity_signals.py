"""Wire models whose changes are feed-worthy to the activity service."""


def connect() -> None:
    pass
