"""Prometheus metrics of one chatd process, in a registry of our own.

Every name starts with `chatd_`. The per-message cost is kept to a counter
increment (received), one increment per fan-out whatever the number of
recipients (delivered), and one histogram observation per stored message
(store-to-broadcast latency). Gauges read live state only when scraped.
"""
import time

from prometheus_client import (CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge,
                               Histogram, ProcessCollector, disable_created_metrics,
                               generate_latest)

# Close codes chatd sends when it refuses a peer, as the `reason` label.
CLOSE_REASONS = {1002: "protocol_error", 1007: "invalid_utf8", 1008: "policy",
                 1009: "too_big", 1013: "too_slow"}
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    def __init__(self, connections, rooms):
        """`connections()` and `rooms()` count live state when scraped."""
        disable_created_metrics()  # no *_created series: half the output, no use here
        self.registry = registry = CollectorRegistry(auto_describe=True)
        # CPU seconds, resident memory, open and max file descriptors, start time.
        ProcessCollector(namespace="chatd", registry=registry)
        Gauge("chatd_websocket_connections", "Open WebSocket connections on this process.",
              registry=registry).set_function(connections)
        Gauge("chatd_rooms_active", "Rooms with at least one live connection on this process.",
              registry=registry).set_function(rooms)
        self.received = Counter("chatd_messages_received",
                                "Chat messages clients sent (send-message), before any check.",
                                registry=registry).inc
        self._delivered = Counter("chatd_messages_delivered",
                                  "new-message events queued to connections.",
                                  registry=registry)
        self._rejected = Counter("chatd_rejected_frames",
                                 "Frames, messages or upgrades refused, by reason.",
                                 ["reason"], registry=registry)
        self._latency = Histogram("chatd_message_store_to_broadcast_seconds",
                                  "From a message's store time to its fan-out on this process.",
                                  buckets=LATENCY_BUCKETS, registry=registry)
        self._http = Counter("chatd_http_requests", "HTTP requests by route and status.",
                             ["route", "status"], registry=registry)
        self._http_seconds = Histogram("chatd_http_request_duration_seconds",
                                       "Time to answer an HTTP request, by route.", ["route"],
                                       buckets=LATENCY_BUCKETS, registry=registry)

    # -- hooks on the hot path ------------------------------------------------
    def delivered(self, recipients):
        """One fan-out reached `recipients` connections (the hub calls this once)."""
        self._delivered.inc(recipients)

    def rejected(self, reason):
        self._rejected.labels(reason).inc()

    def closed(self, sent_code, peer_code):
        """A WebSocket ended; count it if chatd closed it to refuse the peer."""
        reason = CLOSE_REASONS.get(sent_code)
        if reason and peer_code is None:
            self._rejected.labels(reason).inc()

    def broadcast_done(self, created_at_ms):
        """A message stored at `created_at_ms` has reached this process's sessions."""
        self._latency.observe(max(0.0, time.time() - created_at_ms / 1000.0))

    # -- HTTP -------------------------------------------------------------------
    def http_request(self, environ, status, seconds):
        """RequestLog's hook: route is the matched rule, so labels stay few."""
        route = environ.get("bottle.route")
        rule = route.rule if route is not None else "unmatched"
        self._http.labels(rule, status).inc()
        self._http_seconds.labels(rule).observe(seconds)

    def render(self):
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
