"""The meeting API's routers, one per area; `services.meeting.api.app.build_app` includes them."""
