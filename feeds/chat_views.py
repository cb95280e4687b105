"""Chat pages (the room list, one room) and the JSON list behind the live online counts."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from feeds import access, ratelimit, selectors, services
from feeds.chat_forms import RoomCreateForm
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
        return services.room_create(title=form.cleaned_data["title"], created_by=request.user)
    except ValidationError as exc:
        form.add_error("title", exc)
        return None


@login_required
@require_GET
def room_detail(request: HttpRequest, slug: str) -> HttpResponse:
    room = selectors.room_entry(user=request.user, slug=slug)
    if room is None:
        raise Http404("no such room")  # the same for private rooms one may not enter
    can_moderate = access.can_moderate(request.user, room)
    return render(request, "feeds/room.html", {"room": room, "can_moderate": can_moderate})


@require_get
@login_required_json
def api_room_list(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"rooms": selectors.room_list(user=request.user)})
