from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from notifications.models import Notification, ReadChange


class ReadStateFilter(admin.SimpleListFilter):
    title = "read state"
    parameter_name = "read"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list:
        return [("unread", "Unread"), ("read", "Read")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() == "unread":
            return queryset.filter(read_at__isnull=True)
        if self.value() == "read":
            return queryset.filter(read_at__isnull=False)
        return queryset


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ("title", "recipient", "level", "created_at", "read_at")
    list_filter = (ReadStateFilter, "level", "created_at")
    search_fields = ("title", "body", "recipient__username")
    raw_id_fields = ("recipient", "actor")
    readonly_fields = ("created_at", "send_key")
    date_hierarchy = "created_at"
    list_select_related = ("recipient",)


@admin.register(ReadChange)
class ReadChangeAdmin(admin.ModelAdmin):
    list_display = ("user", "created_at", "count")
    list_select_related = ("user",)
    raw_id_fields = ("user",)

    @admin.display(description="notifications")
    def count(self, obj: ReadChange) -> int:
        return len(obj.notification_ids)
