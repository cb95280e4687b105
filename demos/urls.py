from django.urls import path

from demos import views

app_name = "demos"

urlpatterns = [
    path("demos/board/", views.board_page, name="board"),
]
