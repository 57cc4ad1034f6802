"""Plug-in path 2: existing HTTP services as saga participants, with no Kafka code in them.

    sagas bridge --config bridge.yaml

For each command type in the config, the bridge POSTs the command's ``data``
to an HTTP endpoint with ``Idempotency-Key: <command id>``, and publishes the
reply the saga waits for: 2xx -> the success type with the response JSON as
``data``; 4xx -> the failure type; 5xx, 408, 425, 429, connection errors and
timeouts are retried with backoff.

* `sagas.participants.bridge.config`  the config file (routes, retry, headers)
* `sagas.participants.bridge.outcome` the pure part: HTTP outcome -> reply
* `sagas.participants.bridge.runner`  `HttpBridge`, a participant whose runner makes the calls
"""

from sagas.participants.bridge.config import BridgeConfig, Route
from sagas.participants.bridge.outcome import HttpOutcome, reply_for
from sagas.participants.bridge.runner import HttpBridge

__all__ = ["BridgeConfig", "HttpBridge", "HttpOutcome", "Route", "reply_for"]
