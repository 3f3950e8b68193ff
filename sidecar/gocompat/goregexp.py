"""Go's ``regexp.Expand``: the ``$1`` / ``${name}`` templates of ``label_replace`` and
relabelling, expanded as Go expands them (a malformed ``$`` is literal text, an unknown
group is the empty string).
"""

from __future__ import annotations

from typing import Any

__all__ = ["expand"]


def _group_number(name: str) -> int:
    # Go's extract(): ASCII digits only, no leading zero, at most ~9 digits; else a name.
    num = 0
    for ch in name:
        if not "0" <= ch <= "9" or num >= 100_000_000:
            return -1
        num = num * 10 + ord(ch) - 48
    if name[0] == "0" and len(name) > 1:
        return -1
    return num


def expand(template: str, match: Any, groupindex: dict[str, int], ngroups: int) -> str:
    """Go's ``Regexp.ExpandString``: ``$1``, ``${1}``, ``$name``, ``${name}``, ``$$``."""
    out: list[str] = []
    rest = template
    while rest:
        before, dollar, after = rest.partition("$")
        out.append(before)
        if not dollar:
            return "".join(out)
        rest = after
        if rest.startswith("$"):
            out.append("$")
            rest = rest[1:]
            continue
        brace = rest.startswith("{")
        body = rest[1:] if brace else rest
        k = 0
        while k < len(body) and (body[k].isalpha() or body[k].isdecimal() or body[k] == "_"):
            k += 1
        if k == 0 or (brace and (k >= len(body) or body[k] != "}")):
            out.append("$")  # malformed: the $ is literal text
            continue
        name = body[:k]
        rest = body[k + 1 :] if brace else body[k:]
        num = _group_number(name)
        idx = num if num >= 0 else groupindex.get(name, -1)
        if 0 <= idx <= ngroups:
            text = match.group(idx)
            if text is not None:
                out.append(text)
    return "".join(out)
