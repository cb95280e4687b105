"""Chat pages (the room list, one room) and the JSON list behind the live online counts."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from feeds import access, membership, protocol, ratelimit, selectors, services
from feeds.chat_forms import MemberChangeForm, RoomCreateForm
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
    rooms = selectors.room_list(user=request.user)
    status = 400 if form.errors else 200
    return render(request, "feeds/room_list.html", {"rooms": rooms, "form": form}, status=status)


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
    context = {
        "room": room,
        "can_moderate": access.can_moderate(request.user, room),
        "members": membership.room_members(room=room) if room.is_private else [],
        "member_form": form,
    }
    return render(request, "feeds/room.html", context, status=status)


_CHANGES = {
    "add": membership.room_member_add,
    "remove": membership.room_member_remove,
    "promote": membership.room_member_promote,
}
_REFUSAL_STATUS = {protocol.FORBIDDEN: 403, protocol.NOT_FOUND: 404}


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
