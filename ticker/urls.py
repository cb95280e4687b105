from django.urls import path

from ticker import views

app_name = "ticker"

urlpatterns = [
    path("ticker/", views.ticker_page, name="page"),
]
