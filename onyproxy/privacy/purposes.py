"""Why the gateway processes personal data: the static list every subject export carries.

Kept in code, next to the features it describes, so a new kind of processing and its line here
change together. Each purpose names the data it uses and its legal basis under KVKK art. 5
(and, where it has one of its own, how long the data is kept).
"""

from __future__ import annotations

from typing import Any

PURPOSES: tuple[dict[str, Any], ...] = (
    {
        "purpose": "Providing the API service: authenticating requests and forwarding them to "
                   "the chosen AI provider",
        "data": ["account id", "API key (stored only as a hash)", "request content, in memory "
                 "only and never stored"],
        "legal_basis": "performance of a contract (KVKK art. 5(2)(c))",
    },
    {
        "purpose": "Metering and billing usage",
        "data": ["usage events: key, model, provider, token counts, cost, status, latency, "
                 "time", "monthly billing totals", "company and billing details"],
        "legal_basis": "performance of a contract; legal obligation to keep invoicing records "
                       "(KVKK art. 5(2)(ç))",
    },
    {
        "purpose": "Security and abuse prevention: rate limits, blocking repeated wrong keys",
        "data": ["IP address and user agent in usage events (kept 90 days)"],
        "legal_basis": "legitimate interest (KVKK art. 5(2)(f))",
    },
    {
        "purpose": "Security monitoring: detecting abuse of API keys (use far above the key's "
                   "own baseline, a key used from many addresses at once, bursts of failed "
                   "sign-ins from one address) and suspending a key automatically",
        "data": ["security events: detector, key and account id, time, action taken, reason "
                 "and the numbers it rested on; never request content",
                 "client address as a keyed hash (as is only where the operator set "
                 "client_ip: keep)"],
        "legal_basis": "legitimate interest in securing the service and the person's keys "
                       "(KVKK art. 5(2)(f)); an automatic suspension can be objected to "
                       "(KVKK art. 11(1)(g))",
        "retention": "as long as usage events (retention.usage_events_days, 90 days by "
                     "default); deleted with the account when it is purged",
    },
    {
        "purpose": "Account administration and communication, including notices about changes "
                   "to the privacy policy",
        "data": ["name", "e-mail address", "phone number", "company"],
        "legal_basis": "performance of a contract; legal obligation to inform (KVKK art. 10)",
    },
    {
        "purpose": "Accountability: recording administrative and privacy actions",
        "data": ["audit log entries (who did what to which record, when and why); they hold "
                 "ids, never names or contact details"],
        "legal_basis": "legal obligation (KVKK art. 12)",
    },
)
