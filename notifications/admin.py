from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import path, reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_POST

from notifications import kinds, selectors, services
from notifications.models import (
    Announcement,
    Audience,
    CategoryPreference,
    EmailState,
    Notification,
    NotificationEmail,
    NotificationSettings,
    ReadChange,
)


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


def _kind_choices() -> list[tuple[str, str]]:
    return [(k.name, f"{k.label} ({k.name})") for k in kinds.all_kinds()]


class KindChoiceMixin:
    """The `kind` field as a choice of the registered kinds (the registry is not in the DB)."""

    def formfield_for_dbfield(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "kind":
            return forms.ChoiceField(choices=_kind_choices, initial=db_field.default)
        return super().formfield_for_dbfield(db_field, request, **kwargs)


@admin.register(Notification)
class NotificationAdmin(KindChoiceMixin, admin.ModelAdmin):
    list_display = ("title", "recipient", "kind", "level", "created_at", "read_at")
    list_filter = (ReadStateFilter, "kind", "level", "created_at")
    search_fields = ("title", "body", "recipient__username")
    raw_id_fields = ("recipient", "actor")
    # Archiving is the user's (it publishes to their tabs); the admin only shows it.
    readonly_fields = ("created_at", "send_key", "archived_at")
    date_hierarchy = "created_at"
    list_select_related = ("recipient",)


@admin.register(ReadChange)
class ReadChangeAdmin(admin.ModelAdmin):
    list_display = ("user", "action", "created_at", "count")
    list_select_related = ("user",)
    raw_id_fields = ("user",)

    @admin.display(description="notifications")
    def count(self, obj: ReadChange) -> int:
        return len(obj.notification_ids)


@admin.register(CategoryPreference)
class CategoryPreferenceAdmin(admin.ModelAdmin):
    list_display = ("user", "category", "in_app", "email")
    list_filter = ("category", "in_app", "email")
    search_fields = ("user__username",)
    raw_id_fields = ("user",)


RETRYABLE = (EmailState.FAILED, EmailState.IN_DOUBT, EmailState.PENDING)


@admin.register(NotificationEmail)
class NotificationEmailAdmin(admin.ModelAdmin):
    """What became of each notification's email; failed ones (SMTP errors, bounces) say why."""

    list_display = ("notification", "user", "mode", "state", "due_at", "attempts", "sent_at")
    list_filter = ("state", "mode")
    search_fields = ("user__username", "user__email")
    raw_id_fields = ("notification", "user")
    readonly_fields = ("claim", "claimed_until", "attempts", "sent_at", "last_error")
    actions = ("retry_now",)

    @admin.action(description="Send again now (failed, in doubt or pending ones)")
    def retry_now(self, request: HttpRequest, queryset: QuerySet[NotificationEmail]) -> None:
        # In doubt: a worker died during SMTP DATA. Only staff decide to risk a second copy.
        retried = queryset.filter(state__in=RETRYABLE)
        in_doubt = retried.filter(state=EmailState.IN_DOUBT).count()
        count = retried.update(
            state=EmailState.PENDING, due_at=timezone.now(), attempts=0, last_error=""
        )
        text = f"{count} email(s) will be sent by the next worker pass."
        if in_doubt:
            text += f" {in_doubt} of them were in doubt: the recipient may get a second copy."
        self.message_user(request, text)


@admin.register(NotificationSettings)
class NotificationSettingsAdmin(admin.ModelAdmin):
    list_display = ("user", "pause_email", "quiet_start", "quiet_end", "time_zone")
    search_fields = ("user__username",)
    raw_id_fields = ("user",)


class AnnouncementForm(forms.ModelForm):
    class Meta:
        model = Announcement
        fields = (
            "title",
            "body",
            "kind",
            "level",
            "audience",
            "groups",
            "publish_at",
            "expires_at",
        )

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if self.errors:
            return data
        # Read-only fields (a published announcement's audience) keep the instance's values.
        instance = self.instance
        if "groups" in data:
            groups = list(data["groups"])
        else:
            groups = list(instance.groups.all()) if instance.pk else []
        try:
            services.announcement_check(
                title=data.get("title", instance.title),
                body=data.get("body", instance.body),
                kind=data.get("kind", instance.kind),
                level=data.get("level", instance.level),
                audience=data.get("audience", instance.audience),
                groups=groups,
                publish_at=data.get("publish_at", instance.publish_at),
                expires_at=data.get("expires_at", instance.expires_at),
            )
        except ValidationError as exc:
            raise forms.ValidationError(exc.messages) from exc
        return data


class AnnouncementStatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list:
        return [("draft", "Draft"), ("scheduled", "Scheduled"), ("published", "Published")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        unpublished = queryset.filter(published_at__isnull=True)
        if self.value() == "draft":
            return unpublished.filter(publish_at__isnull=True)
        if self.value() == "scheduled":
            return unpublished.filter(publish_at__isnull=False)
        if self.value() == "published":
            return queryset.filter(published_at__isnull=False)
        return queryset


CONTENT_FIELDS = ("title", "body", "kind", "level", "audience", "groups")
PUBLISHED_HELP = (
    "Published: its content and audience can no longer change, since an edit would not "
    "reach anyone who already has it. To correct it, expire it and publish a new one."
)
SCHEDULED_READ_ONLY = (
    "“{title}” is {state} and goes out under the name of whoever scheduled it: only staff "
    "who may publish announcements can change it."
)


def _is_scheduled_or_published(announcement: Announcement) -> bool:
    return announcement.is_published or announcement.publish_at is not None


RECORD_FIELDS = (
    "status",
    "created_by",
    "created_at",
    "scheduled_by",
    "published_by",
    "published_at",
    "audience_size",
    "muted_count",
    "read_count",
)


@admin.register(Announcement)
class AnnouncementAdmin(KindChoiceMixin, admin.ModelAdmin):
    """Staff write announcements; only holders of publish_announcement send or schedule them."""

    form = AnnouncementForm
    change_form_template = "admin/notifications/announcement/change_form.html"
    list_display = (
        "title",
        "level",
        "audience_label",
        "status",
        "published_at",
        "published_by",
        "expires_at",
        "audience_size",
        "muted_count",
        "read_count",
    )
    list_filter = (AnnouncementStatusFilter, "level", "audience")
    list_select_related = ("published_by",)
    search_fields = ("title", "body")
    filter_horizontal = ("groups",)
    actions = ("publish_now", "expire_now")
    fieldsets = (
        (None, {"fields": ("title", "body", "kind", "level")}),
        ("Audience", {"fields": ("audience", "groups")}),
        ("Schedule", {"fields": ("publish_at", "expires_at")}),
        ("Record", {"fields": RECORD_FIELDS}),
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        qs = super().get_queryset(request).prefetch_related("groups")
        return selectors.announcements_with_stats(qs)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        fields = RECORD_FIELDS
        if obj is not None and obj.is_published:
            # Edits would reach nobody who already has it; expires_at still stops showing it.
            return (*fields, *CONTENT_FIELDS, "publish_at")
        if not self.has_publish_permission(request):
            return (*fields, "publish_at")  # scheduling is publishing
        return fields

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None or not obj.is_published:
            return self.fieldsets
        (_, content), *rest = self.fieldsets
        return ((None, {**content, "description": PUBLISHED_HELP}), *rest)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # A scheduled announcement goes out under its scheduler's name: only publishers may
        # change what it says or to whom (the scheduler would otherwise publish others' words).
        scheduled = obj is not None and _is_scheduled_or_published(obj)
        if scheduled and not self.has_publish_permission(request):
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Deleting a published announcement takes it off every page: that is publishing
        # too. Checked per object by the delete view (403) and the bulk action (nothing
        # is deleted while any selected one is refused).
        if obj is not None and obj.is_published and not self.has_publish_permission(request):
            return False
        return super().has_delete_permission(request, obj)

    def delete_model(self, request: HttpRequest, obj: Announcement) -> None:
        services.announcement_delete(announcement=obj, by=request.user)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        for announcement in queryset:
            services.announcement_delete(announcement=announcement, by=request.user)

    def has_publish_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("notifications.publish_announcement")

    def save_model(self, request: HttpRequest, obj: Announcement, form: Any, change: bool) -> None:
        if not change:
            obj.created_by = request.user
        obj.category = kinds.get(obj.kind).category
        if obj.publish_at and not obj.is_published and form.changed_data:
            # Whoever last set the schedule or changed a scheduled announcement publishes it.
            obj.scheduled_by = request.user
        super().save_model(request, obj, form, change)

    # ------------------------------------------------------------ columns

    @admin.display(description="audience")
    def audience_label(self, obj: Announcement) -> str:
        if obj.audience == Audience.EVERYONE:
            return "everyone"
        return ", ".join(g.name for g in obj.groups.all()) or "no groups"

    @admin.display(description="status")
    def status(self, obj: Announcement) -> str:
        now = timezone.now()
        if obj.expires_at and obj.expires_at <= now:
            return "expired" if obj.is_published else "expired unpublished"
        if obj.is_published:
            return "published"
        if obj.publish_at:
            return f"scheduled for {timezone.localtime(obj.publish_at):%Y-%m-%d %H:%M}"
        return "draft"

    @admin.display(description="audience size", ordering="audience_size")
    def audience_size(self, obj: Announcement) -> int | str:
        return getattr(obj, "audience_size", "—")

    @admin.display(description="turned off", ordering="muted_count")
    def muted_count(self, obj: Announcement) -> int | str:
        """Of its audience, those who turned its category off: not shown it."""
        return getattr(obj, "muted_count", "—")

    @admin.display(description="read by", ordering="read_count")
    def read_count(self, obj: Announcement) -> int | str:
        return getattr(obj, "read_count", "—")

    # ------------------------------------------------------------ publishing

    @admin.action(description="Publish now", permissions=["publish"])
    def publish_now(self, request: HttpRequest, queryset: QuerySet) -> None:
        for announcement in queryset:
            self._publish(request, announcement)

    @admin.action(description="Expire now (stop showing)", permissions=["publish"])
    def expire_now(self, request: HttpRequest, queryset: QuerySet) -> None:
        expired = 0
        for announcement in queryset:
            if services.announcement_expire(announcement=announcement):
                self.log_change(request, announcement, "Expired.")
                expired += 1
        self.message_user(request, f"{expired} announcement(s) no longer shown, on open pages too.")

    def _publish(self, request: HttpRequest, announcement: Announcement) -> None:
        try:
            published = services.announcement_publish(announcement=announcement, by=request.user)
        except ValidationError as exc:
            self.message_user(
                request, f"“{announcement}” not published: {exc.messages[0]}.", messages.ERROR
            )
            return
        if not published:
            self.message_user(request, f"“{announcement}” was already published.", messages.WARNING)
            return
        self.log_change(request, announcement, "Published.")
        text = f"“{announcement}” published."
        if muted := selectors.announcement_muted_count(announcement_id=announcement.pk):
            text += f" Not shown to {muted} who turned off “{announcement.category}”."
        self.message_user(request, text, messages.SUCCESS)

    def get_urls(self) -> list:
        # Not behind admin_view: a signed-in user without the right gets a 403, not a login page.
        view = never_cache(csrf_protect(require_POST(self.publish_view)))
        publish = path("<path:object_id>/publish/", view, name="notifications_announcement_publish")
        return [publish, *super().get_urls()]

    def publish_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """POST: publish one announcement. 403 for anyone but staff with the permission."""
        user = request.user
        if not user.is_authenticated:
            return redirect_to_login(request.get_full_path(), reverse("admin:login"))
        if not (user.is_active and user.is_staff and self.has_publish_permission(request)):
            raise PermissionDenied("publishing needs the publish_announcement permission")
        # get_object answers None for a malformed id too ("abc" made get_object_or_404 a 500).
        announcement = self.get_object(request, unquote(object_id))
        if announcement is None:
            raise Http404("no such announcement")
        self._publish(request, announcement)
        return redirect("admin:notifications_announcement_change", announcement.pk)

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        can_publish = self.has_publish_permission(request)
        obj = self.get_object(request, unquote(object_id))
        if request.method == "GET" and obj and not can_publish and _is_scheduled_or_published(obj):
            state = "published" if obj.is_published else "scheduled"
            self.message_user(
                request, SCHEDULED_READ_ONLY.format(title=obj, state=state), messages.INFO
            )
        extra_context = {**(extra_context or {}), "can_publish": can_publish}
        return super().change_view(request, object_id, form_url, extra_context)
