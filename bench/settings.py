"""Benchmarks only: the product's settings turned into the *stock* django-eventstream baseline.

`DJANGO_SETTINGS_MODULE=bench.settings` (bench/env.py and bench/procs.py set it for the stock
server and publisher) serves django-eventstream as its README wires it: its own Redis listener,
model storage and the default channel manager, which lets anyone read any channel, at
/bench/stock-events/ (bench/urls.py). It refuses to load unless the database is a throwaway
one that bench/ created (bench/throwaway_db.py).
"""

from urllib.parse import urlparse

from bench.throwaway_db import require_throwaway_database
from config.settings import *  # noqa: F403
from config.settings import DATABASES, REDIS_URL

require_throwaway_database(DATABASES["default"], owner="bench.settings")

ROOT_URLCONF = "bench.urls"

EVENTSTREAM_REDIS = (
    {"unix_socket_path": REDIS_URL.removeprefix("unix://")}
    if REDIS_URL.startswith("unix://")
    else {"host": urlparse(REDIS_URL).hostname, "port": urlparse(REDIS_URL).port or 6379}
)
EVENTSTREAM_STORAGE_CLASS = "django_eventstream.storage.DjangoModelStorage"
# django-eventstream's own default, named here because config.settings replaces it.
EVENTSTREAM_CHANNELMANAGER_CLASS = "django_eventstream.channelmanager.DefaultChannelManager"
# The stock publisher calls django_eventstream.send_event() itself, not through Pulse.
PULSE_SEND_EVENT_BRIDGE = False
