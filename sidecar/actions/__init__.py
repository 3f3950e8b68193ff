"""Actions: from alerts and operators to calls at the app, journaled and deduplicated.

Owns: the ``Action`` value (``action``), routing alert labels to actions (``routing``),
the receiver (``receiver``) and forwarding other sidecars' alerts to them (``forward``),
the decisions and the journal's use (``dispatch``) on the dedupe and cooldown memory
(``plan``), the fleet budget (``fleet``), the journal itself (``journal``) and its
typed, versioned lines (``entries``), the breaker state machine (``breaker``), the
pending calls (``calls``), the circuit's intent (``intent``) and its reconciliation
(``reconcile``), the calls to the app (``actuator``), recent history for people
(``history``) and their wiring (``path``).

May import: ``store``, ``gocompat``, ``core``. Never ``scrape`` or ``rules``: the breaker
sees the rules only through its ``ConditionView`` protocol. HTTP serving is ``web``'s.
"""
