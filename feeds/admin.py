from typing import Any

from django.contrib import admin

from feeds import services
from feeds.models import Activity, Message, Room


@admin.register(Room)
class RoomAdmin(admin.ModelAdmin):
    list_display = ("title", "slug", "is_private", "created_by", "created_at")
    list_filter = ("is_private", "created_at")
    search_fields = ("title", "slug")
    prepopulated_fields = {"slug": ("title",)}
    filter_horizontal = ("members", "admins")
    raw_id_fields = ("created_by",)
    readonly_fields = ("created_at",)

    def save_model(self, request: Any, obj: Room, form: Any, change: bool) -> None:
        if not change and obj.created_by_id is None:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    """Deleting here is a chat delete (feeds.services.message_delete): the message becomes a
    tombstone and every open tab drops it, instead of a row vanishing from under the
    room's `prev` chain while pages still show it."""

    list_display = ("__str__", "room", "author", "created_at", "edited_at", "deleted_at")
    list_filter = ("room", "created_at", "deleted_at")
    search_fields = ("content", "author__username", "room__slug")
    raw_id_fields = ("room", "author")
    readonly_fields = ("created_at", "client_msg_id", "edited_at", "deleted_at")
    list_select_related = ("room", "author")
    date_hierarchy = "created_at"

    def delete_model(self, request: Any, obj: Message) -> None:
        services.message_delete(room=obj.room, actor=request.user, message_id=obj.pk)

    def delete_queryset(self, request: Any, queryset: Any) -> None:
        for message in queryset.select_related("room"):
            services.message_delete(room=message.room, actor=request.user, message_id=message.pk)


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
