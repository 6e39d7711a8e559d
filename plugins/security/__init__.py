"""Plugin ``security``: usage spikes, keys used from many addresses, failed-auth bursts;
metrics, JSON log events, stored events and (optionally) automatic key suspension.

Put it right after ``auth``::

    pipeline:
      - {name: auth}
      - name: security
        usage_spike: {action: log, factor: 10, min_requests_per_minute: 120}
        many_ips: {action: suspend, max_ips: 20, window_s: 300}
        auth_failures: {action: log, threshold: 10, window_s: 60}
        cooldown_s: 600
        client_ip: hash         # hash | keep, in events and log lines
"""

from plugins.security.plugin import SecurityPlugin as Plugin

__all__ = ["Plugin"]
