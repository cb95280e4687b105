from django.urls import path

from feeds import feed_views

app_name = "feed"

urlpatterns = [
    path("feed/", feed_views.feed, name="feed"),
    path("api/feed/", feed_views.feed_history, name="api-feed"),
]
