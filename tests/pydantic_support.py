"""pydantic's own words for an error type, so that tests pin the type, not the wording.

The sidecar passes pydantic's messages on (config problems, 422 bodies); their wording is
the library's and changes between releases. A test asserts our part of the text exactly
and names the error *type* here; the words come from the installed pydantic.
"""

from __future__ import annotations

from typing import Literal

from pydantic_core import ValidationError

__all__ = ["says"]


def says(error_type: str, mode: Literal["python", "json"] = "python", **context: object) -> str:
    """The message pydantic gives for ``error_type`` with ``context`` (``json`` for a
    JSON body: some types are worded differently there, "array" for "list")."""
    detail: dict[str, object] = {"type": error_type, "loc": (), "input": None}
    if context:
        detail["ctx"] = context
    exc = ValidationError.from_exception_data("check", [detail], input_type=mode)  # type: ignore[list-item]
    return exc.errors()[0]["msg"]
