from django.urls import path

from feeds import chat_views

app_name = "chat"

urlpatterns = [
    path("chat/", chat_views.room_list, name="rooms"),
    path("chat/<slug:slug>/", chat_views.room_detail, name="room"),
    path("api/chat/rooms/", chat_views.api_room_list, name="api-rooms"),
]
