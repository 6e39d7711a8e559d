"""Why the gateway processes personal data: the static list every subject export carries.

Kept in code, next to the features it describes, so a new kind of processing and its line here
change together. Each purpose names the data it uses and its legal basis under KVKK art. 5.
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
