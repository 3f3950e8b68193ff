"""Alert label and annotation templates: Go ``text/template`` as Prometheus runs it.

Owns: the lexer (``lex``), the parser (``parse``), Prometheus's template functions
(``funcs``) and expansion (``expand``).

May import: ``gocompat``, ``core``.
"""
