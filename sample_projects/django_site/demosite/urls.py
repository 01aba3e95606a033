from django.urls import include, path

from . import views

urlpatterns = [
    path("", views.home, name="home"),
    # attachdaemon's status page (HTML refreshing itself) and its JSON, for staff users; the
    # sample lets requests from 127.0.0.1 through (see views.loopback_sees_daemons).
    path("daemons/", include("attachdaemon_django.urls")),
]
