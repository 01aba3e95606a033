from django.urls import include, path

urlpatterns = [path("daemons/", include("attachdaemon_django.urls"))]
