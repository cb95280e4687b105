from typing import Any

from django.contrib import admin
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from feeds import selectors, services
from feeds.models import Activity, Message, Report, Room, RoomBan, RoomMute


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


@admin.register(Report)
class ReportAdmin(admin.ModelAdmin):
    """The queue of reported messages, open ones first, each shown with the messages
    around it. "Delete the reported messages" is a chat delete (tombstones, live)."""

    list_display = ("__str__", "room", "author", "excerpt", "reporter", "created_at", "resolved_at")
    list_filter = (("resolved_at", admin.EmptyFieldListFilter), "created_at")
    search_fields = ("message__content", "reporter__username", "message__author__username")
    list_select_related = ("message__room", "message__author", "reporter")
    readonly_fields = ("message", "reporter", "reason", "created_at", "context")
    fields = ("message", "reporter", "reason", "created_at", "resolved_at", "context")
    actions = ("resolve", "delete_messages")

    @admin.display(description="room")
    def room(self, obj: Report) -> str:
        return obj.message.room.slug

    @admin.display(description="author")
    def author(self, obj: Report) -> str:
        return obj.message.author.username

    @admin.display(description="message")
    def excerpt(self, obj: Report) -> str:
        return obj.message.content[:80] or "(deleted)"

    @admin.display(description="context")
    def context(self, obj: Report) -> str:
        rows = selectors.message_context(message=obj.message)
        return format_html(
            '<ol class="report-context">{}</ol>',
            format_html_join(
                "",
                "<li>{}<b>{}</b> {}: {}</li>",
                (
                    (
                        "▶ reported: " if row["id"] == obj.message_id else "",
                        row["created_at"][:19],
                        row["user"],
                        row["content"] or "(deleted)",
                    )
                    for row in rows
                ),
            ),
        )

    @admin.action(description="Mark resolved")
    def resolve(self, request: Any, queryset: Any) -> None:
        queryset.filter(resolved_at__isnull=True).update(resolved_at=timezone.now())

    @admin.action(description="Delete the reported messages and resolve")
    def delete_messages(self, request: Any, queryset: Any) -> None:
        for report in queryset.select_related("message__room"):
            message = report.message
            services.message_delete(room=message.room, actor=request.user, message_id=message.pk)
        self.resolve(request, queryset)


@admin.register(RoomMute, RoomBan)
class RoomSanctionAdmin(admin.ModelAdmin):
    """Mutes and bans; deleting one lifts it."""

    list_display = ("__str__", "room", "user", "by")
    raw_id_fields = ("room", "user", "by")
    list_select_related = ("room", "user", "by")
