"""Local imitations of each provider, served over real HTTP on 127.0.0.1 or in-process.

``registry`` says which imitation serves which provider; ``base`` is the small WSGI framework they
share (OAuth, limits, faults); ``common`` holds what the ledger imitations share (exact JSON numbers,
half-up rounding, the folded-name index, pages). Nothing here imports the connectors, the sync or the
product's money code: docs/providers.md says what each imitation covers and where it differs.
"""
