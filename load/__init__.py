"""Load tests through Locust: the real device agent and meeting client, driven in Locust's gevent
world (`load.client`), started in their own processes by `roomtrust load` (`load.cli`), with the
provisioning step, thresholds, and the calibration of the simulator (`load.calibrate`).

Only `load.client` imports gevent or Locust; every other module here is safe in an asyncio process.
"""
