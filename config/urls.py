from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.generic import RedirectView

from realtime.ops import metrics_view

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="notifications:inbox"), name="home"),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    # Staff sessions; scrapers with METRICS_TOKEN are answered before Django (realtime/ops.py).
    path("metrics", metrics_view, name="metrics"),
    path("", include("notifications.urls")),
    path("", include("feeds.chat_urls")),
    path("", include("feeds.feed_urls")),
    path("", include("demos.urls")),
    path("", include("ticker.urls")),
]

# JSON under /api/ and /events/, the site's pages elsewhere (they apply when DEBUG is off).
handler400 = "notifications.http.bad_request"
handler403 = "notifications.http.permission_denied"
handler404 = "notifications.http.page_not_found"
handler500 = "notifications.http.server_error"
