from typing import Any

from django.contrib import admin

from feeds.models import Activity, Message, Room


@admin.register(Room)
class RoomAdmin(admin.ModelAdmin):
    list_display = ("title", "slug", "is_private", "created_by", "created_at")
    list_filter = ("is_private", "created_at")
    search_fields = ("title", "slug")
    prepopulated_fields = {"slug": ("title",)}
    filter_horizontal = ("members",)
    raw_id_fields = ("created_by",)
    readonly_fields = ("created_at",)

    def save_model(self, request: Any, obj: Room, form: Any, change: bool) -> None:
        if not change and obj.created_by_id is None:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ("__str__", "room", "author", "created_at")
    list_filter = ("room", "created_at")
    search_fields = ("content", "author__username", "room__slug")
    raw_id_fields = ("room", "author")
    readonly_fields = ("created_at", "client_msg_id")
    list_select_related = ("room", "author")
    date_hierarchy = "created_at"


@admin.register(Activity)
class ActivityAdmin(admin.ModelAdmin):
    """Feed items; deleting one takes it out of the feed for the next page load."""

    list_display = ("target", "verb", "actor", "url", "created_at")
    list_filter = ("verb", "created_at")
    search_fields = ("target", "actor__username")
    raw_id_fields = ("actor",)
    readonly_fields = ("created_at",)
    list_select_related = ("actor",)
    date_hierarchy = "created_at"
