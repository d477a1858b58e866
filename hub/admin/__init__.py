"""The admin console served at `/admin` by the HTTP hub (docs/console.md)."""

from hub.admin.routes import admin_app

__all__ = ["admin_app"]
