from django.urls import path

from feeds import chat_api, chat_views

app_name = "chat"

urlpatterns = [
    path("chat/", chat_views.room_list, name="rooms"),
    path("chat/dm/", chat_views.direct_open, name="direct"),
    path("chat/dm/<str:username>/", chat_views.direct_link, name="direct-with"),
    path("chat/dm/<str:username>/block/", chat_views.block, name="block"),
    path("chat/<slug:slug>/", chat_views.room_detail, name="room"),
    path("chat/<slug:slug>/members/", chat_views.room_members, name="members"),
    path("api/chat/rooms/", chat_views.api_room_list, name="api-rooms"),
    path("api/chat/rooms/<slug:slug>/messages/", chat_api.messages, name="api-messages"),
    path("api/chat/rooms/<slug:slug>/read/", chat_api.read, name="api-read"),
    path(
        "api/chat/rooms/<slug:slug>/messages/<int:message_id>/",
        chat_api.message,
        name="api-message",
    ),
]
