"""Actions: from alerts and operators to calls at the app, journaled and deduplicated.

Owns: the ``Action`` value (``action``), routing alert labels to actions (``routing``),
the receiver (``receiver``), dedupe, cooldowns and the journal's use (``dispatch``), the
journal itself (``journal``) and its typed, versioned lines (``entries``), the breaker
state machine (``breaker``), the calls to the app (``actuator``), recent history for
people (``history``) and their wiring (``path``).

May import: ``store``, ``gocompat``, ``core``. Never ``scrape`` or ``rules``: the breaker
sees the rules only through its ``ConditionView`` protocol. HTTP serving is ``web``'s.
"""
