"""Chat pages (the room list, one room) and the JSON list behind the live online counts."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from feeds import (
    access,
    blocking,
    direct,
    membership,
    protocol,
    ratelimit,
    selectors,
    services,
)
from feeds.chat_forms import BlockForm, DirectForm, MemberChangeForm, RoomCreateForm
from feeds.models import Room
from notifications.http import login_required_json, require_get


@login_required
@require_http_methods(["GET", "POST"])
def room_list(request: HttpRequest) -> HttpResponse:
    form = RoomCreateForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        room = _create_room(request, form)
        if room is not None:
            return redirect("chat:room", slug=room.slug)
    return _room_list_page(request, form, DirectForm(), status=400 if form.errors else 200)


def _room_list_page(
    request: HttpRequest, form: RoomCreateForm, direct_form: DirectForm, status: int = 200
) -> HttpResponse:
    rooms = selectors.room_list(user=request.user)
    context = {"rooms": rooms, "form": form, "direct_form": direct_form}
    return render(request, "feeds/room_list.html", context, status=status)


@login_required
@require_POST
def direct_open(request: HttpRequest) -> HttpResponse:
    """Open (made on first use) the direct-message room with the user named in the form."""
    form = DirectForm(request.POST)
    if form.is_valid():
        try:
            room = direct.direct_room_open(
                user=request.user, username=form.cleaned_data["username"]
            )
        except ValidationError as exc:
            form.add_error("username", exc)
            status = _REFUSAL_STATUS.get(exc.code, 400)
            return _room_list_page(request, RoomCreateForm(), form, status=status)
        return redirect("chat:room", slug=room.slug)
    return _room_list_page(request, RoomCreateForm(), form, status=400)


@login_required
@require_POST
def block(request: HttpRequest, username: str) -> HttpResponse:
    """Block or unblock a user (feeds.blocking), then back to the direct messages with them."""
    form = BlockForm(request.POST)
    if not form.is_valid():
        return JsonResponse({"error": "send action=block or action=unblock"}, status=400)
    blocks = form.cleaned_data["action"] == "block"
    change = blocking.user_block if blocks else blocking.user_unblock
    try:
        user = change(blocker=request.user, username=username)
    except ValidationError as exc:
        status = _REFUSAL_STATUS.get(exc.code, 400)
        return JsonResponse({"error": " ".join(exc.messages), "code": exc.code}, status=status)
    return redirect("chat:direct-with", username=user.username)


@login_required
@require_GET
def direct_link(request: HttpRequest, username: str) -> HttpResponse:
    """A link to the direct messages with `username`: the room if it exists, else a page
    whose button (a POST, so a link alone makes nothing) opens it."""
    try:
        room = direct.direct_room_find(user=request.user, username=username)
    except ValidationError as exc:
        raise Http404(" ".join(exc.messages)) from None
    if room is not None:
        return redirect("chat:room", slug=room.slug)
    return render(request, "feeds/direct_start.html", {"username": username})


def _create_room(request: HttpRequest, form: RoomCreateForm) -> Room | None:
    """The room, or None with the reason added to the form."""
    if not ratelimit.room_create_allowed(user_id=request.user.pk):
        minutes = ratelimit.ROOM_WINDOW_SECONDS // 60
        form.add_error(
            "title",
            f"You have created {ratelimit.ROOMS_PER_WINDOW} rooms in the last {minutes} "
            "minutes; try again later.",
        )
        return None
    try:
        return services.room_create(
            title=form.cleaned_data["title"],
            created_by=request.user,
            is_private=form.cleaned_data["private"],
        )
    except ValidationError as exc:
        form.add_error("title", exc)
        return None


@login_required
@require_GET
def room_detail(request: HttpRequest, slug: str) -> HttpResponse:
    room = selectors.room_entry(user=request.user, slug=slug)
    if room is None:
        raise Http404("no such room")  # the same for private rooms one may not enter
    return _room_page(request, room, MemberChangeForm())


def _room_page(
    request: HttpRequest, room: Room, form: MemberChangeForm, status: int = 200
) -> HttpResponse:
    direct_with = ""
    if room.direct_key is not None:
        partners = selectors.direct_partners(user_id=request.user.pk, room_ids=[room.pk])
        direct_with = partners.get(room.pk, "")
    context = {
        "room": room,
        "can_moderate": access.can_moderate(request.user, room),
        "members": membership.room_members(room=room) if room.is_private else [],
        "member_form": form,
        "direct_with": direct_with,
        "blocked": bool(direct_with)
        and blocking.has_blocked(blocker_id=request.user.pk, username=direct_with),
        # Where the page opens: the first message after it (a first visit reads it all).
        "last_read": services.read_marker_open(room=room, user=request.user),
    }
    return render(request, "feeds/room.html", context, status=status)


_CHANGES = {
    "add": membership.room_member_add,
    "remove": membership.room_member_remove,
    "promote": membership.room_member_promote,
}
_REFUSAL_STATUS = {protocol.FORBIDDEN: 403, protocol.NOT_FOUND: 404, protocol.BLOCKED: 403}


@login_required
@require_POST
def room_members(request: HttpRequest, slug: str) -> HttpResponse:
    """Add, remove or promote a member of a private room (its owner and admins only)."""
    room = selectors.room_entry(user=request.user, slug=slug)
    if room is None:
        raise Http404("no such room")
    form = MemberChangeForm(request.POST)
    if not form.is_valid():
        return _room_page(request, room, form, status=400)
    change = _CHANGES[form.cleaned_data["action"]]
    try:
        change(room=room, by=request.user, username=form.cleaned_data["username"])
    except ValidationError as exc:
        form.add_error(None, exc)
        return _room_page(request, room, form, status=_REFUSAL_STATUS.get(exc.code, 400))
    if selectors.room_entry(user=request.user, slug=slug) is None:
        return redirect("chat:rooms")  # they removed themselves
    return redirect(f"{reverse('chat:room', args=[slug])}#members")


@require_get
@login_required_json
def api_room_list(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"rooms": selectors.room_list(user=request.user)})
