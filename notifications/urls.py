from django.urls import path, re_path

from notifications.views import api, email, pages, staff, stream

app_name = "notifications"

urlpatterns = [
    path("notifications/", pages.inbox, name="inbox"),
    path("notifications/settings/", pages.preferences_page, name="preferences"),
    path(
        "notifications/<int:notification_id>/open/",
        email.open_notification,
        name="email-open",
    ),
    path("email/unsubscribe/<str:token>/", email.unsubscribe, name="email-unsubscribe"),
    path("events/", stream.events, name="events"),
    path("staff/transports/", staff.transports, name="staff-transports"),
    path("api/health/", api.health, name="api-health"),
    path("api/notifications/", api.notification_list, name="api-list"),
    path("api/notifications/unread-count/", api.unread_count, name="api-unread-count"),
    path("api/notifications/poll/", stream.poll, name="api-poll"),
    path("api/notifications/read-all/", api.mark_all_read, name="api-read-all"),
    path("api/notifications/<int:notification_id>/read/", api.mark_read, name="api-read"),
    path("api/notifications/seen/", api.mark_seen, name="api-seen"),
    path(
        "api/notifications/<int:notification_id>/",
        api.notification_delete,
        name="api-notification",
    ),
    re_path(
        r"^api/notifications/(?P<notification_id>[0-9]+)/(?P<action>unread|archive|unarchive)/$",
        api.inbox_action,
        name="api-inbox-action",
    ),
    path("api/announcements/", api.announcement_list, name="api-announcements"),
    path("api/preferences/", api.preferences_view, name="api-preferences"),
    path(
        "api/announcements/<int:announcement_id>/read/",
        api.announcement_mark_read,
        name="api-announcement-read",
    ),
]
