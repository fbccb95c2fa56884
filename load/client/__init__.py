"""The Locust side: the sans-IO DeviceAgent and MeetingClient run by a small driver that fires one
Locust request event per request and per message.

`driver` is the driver core and imports neither gevent nor Locust (a bench drives it against a
no-op network); `network` is the gevent network (geventhttpclient for HTTPS, the sync `websockets`
client for WSS, real certificates); `nodes` holds the Locust hooks (identity hand-out from the
master, the conference board, thresholds). Import `network` and `nodes` only in a Locust process:
Locust monkey-patches the standard library with gevent when it is imported (locust #2250).
"""
