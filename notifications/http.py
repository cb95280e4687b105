"""JSON responses and guards shared by the API views, and the JSON side of the error handlers."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults

# Script clients parse every answer under these paths, errors included.
JSON_PATHS = ("/api/", "/events/")


def json_error(status: int, message: str, **extra: Any) -> JsonResponse:
    return JsonResponse({"error": message, **extra}, status=status)


def wants_json(request: HttpRequest) -> bool:
    return request.path.startswith(JSON_PATHS)


def require_methods(
    *methods: str,
) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """Like require_http_methods, but the 405 says so in JSON (still with an Allow header)."""

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if request.method not in methods:
                response = json_error(405, f"method {request.method} not allowed")
                response["Allow"] = ", ".join(methods)
                return response
            return view(request, *args, **kwargs)

        return wrapper

    return decorator


require_get = require_methods("GET")
require_post = require_methods("POST")


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    """handler400 (a body over DATA_UPLOAD_MAX_MEMORY_SIZE, too many fields, other
    SuspiciousOperations): JSON under the API paths, the site's 400 page elsewhere."""
    if wants_json(request):
        too_big = isinstance(exception, RequestDataTooBig)
        return json_error(400, "request body too large" if too_big else "bad request")
    return defaults.bad_request(request, exception)


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """handler404: JSON under the API paths, the site's 404 page elsewhere."""
    if wants_json(request):
        return json_error(404, "not found")
    return defaults.page_not_found(request, exception)


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponse:
    """handler403: JSON under the API paths, the site's 403 page elsewhere."""
    if wants_json(request):
        return json_error(403, "permission denied")
    return defaults.permission_denied(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    """handler500: JSON under the API paths; elsewhere a page that needs no database."""
    if wants_json(request):
        return json_error(500, "server error")
    return defaults.server_error(request)


def login_required_json(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Answer 403 with a JSON body instead of redirecting to the login page."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated:
            return json_error(403, "authentication required")
        return view(request, *args, **kwargs)

    return wrapper


def int_param(request: HttpRequest, name: str, *, minimum: int, maximum: int) -> int | None:
    """A bounded integer query parameter, None if absent; ValueError with a readable message."""
    raw = request.GET.get(name)
    if raw is None or raw == "":
        return None
    if not raw.isdigit():
        raise ValueError(f"{name} must be a positive integer")
    value = int(raw)
    if not minimum <= value <= maximum:
        raise ValueError(f"{name} must be between {minimum} and {maximum}")
    return value
