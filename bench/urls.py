"""Benchmarks only: the product's URLs plus stock django-eventstream at /bench/stock-events/."""

import django_eventstream.urls
from django.urls import include, path

from config.urls import handler400, handler403, handler404, handler500, urlpatterns

__all__ = ["handler400", "handler403", "handler404", "handler500", "urlpatterns"]

# As django-eventstream's README wires it, on the public channel: the baseline of
# bench/sse_fanout.py.
urlpatterns = [
    *urlpatterns,
    path("bench/stock-events/", include(django_eventstream.urls), {"channels": ["announcements"]}),
]
