"""What every stage shares: values, errors, validation, config, logging, retries, loops, times.

Owns: the typed values stages hand each other (``model``), the exception tree
(``errors``), strict validation of every input with msgspec and its one problem in our
words (``validation``), the validated config (``config``: its sections and ``Config``;
``config_actions``: the action path's sections; ``config_evidence`` and
``config_fleet``: theirs; ``config_http``: calls to the app; ``config_fields``: value
types (durations, URLs, sizes, secrets) and the section base; ``config_load``: reading
the file and environment), structlog set-up (``logs``), every retry policy (``retry``), the loop
contract and its interruptible sleep (``loops``), atomic durable writes (``durable``),
the app's outbound credentials (``outbound``), and one home each for durations
(``durations``) and times (``times``).

May import: the standard library and third-party libraries only; nothing of ``sidecar``
outside ``core``.
"""
