"""The Django app: registers the system checks and the metrics collector and, for dev servers
only, starts the daemons."""

from __future__ import annotations

from django.apps import AppConfig
from django.core.signals import setting_changed


class AttachDaemonConfig(AppConfig):
    name = "attachdaemon_django"
    verbose_name = "Attached daemons"
    default_auto_field = "django.db.models.AutoField"

    def ready(self) -> None:
        # Runs in every process that calls django.setup(): management commands, both runserver
        # processes, server workers. startup.maybe_start() decides; it starts at most once.
        from . import checks, conf, startup

        checks.register()
        setting_changed.connect(conf.clear, dispatch_uid="attachdaemon_django.conf.clear")
        # With prometheus_client installed, our series join the app's own /metrics
        # (django-prometheus…); the settings are read when scraped (docs/monitoring.md).
        from attachdaemon_core.hosts.metrics import register_default

        register_default(conf.runtime_dir, key="django")
        startup.maybe_start()
