"""Plugin ``redaction``: secrets masked in logs; PII masked, pseudonymised or blocked upstream.

Put it after ``auth`` (rules per key need ``ex.identity``) and before ``routing``::

    pipeline:
      - {name: auth}
      - name: redaction
        client_ip: hash            # keep | hash | drop, in access-log lines
        log_filter: true           # mask keys in every log line of the process
        pii:                       # optional; without it requests go upstream unchanged
          mode: pseudonymise       # mask: [EMAIL] | pseudonymise: [EMAIL_1], restored | block: 400
          kinds: [email, phone, tckn, iban_tr, card, ip]
          custom: [{name: employee_id, pattern: "\\bEMP-\\d{6}\\b"}]
          models: []               # client model names; empty: all
          keys: []                 # key ids; empty: all callers
      - {name: routing}
"""

from plugins.redaction.plugin import RedactionPlugin as Plugin

__all__ = ["Plugin"]
