"""KVKK (Law No. 6698) and GDPR duties as features: what is held about a person and why
(:mod:`.subject`, :mod:`.purposes`), who received it (:mod:`.recipients`), correcting and
erasing it, objections to automated decisions, the audit log's integrity (:mod:`.audit`), and
privacy-policy versions with e-mail notices (:mod:`.policy`, :mod:`.mail`).

The CLI (``onyproxy subject|audit|notify``) and the admin API (``onyproxy.admin.privacy``) are
thin layers over these functions, so both behave the same and both write the audit log.
"""
