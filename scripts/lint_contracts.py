"""An import-linter contract its built-in ones cannot state: a submodule of an external
package (``aiohttp.web``) imported only by some of our modules.

import-linter folds external packages to their top level (``aiohttp``), so a ``forbidden``
contract can only forbid all of aiohttp, and the scrape loop, the actuator and the
notifier rightly use its client. This contract reads the import lines grimp recorded for
the external package instead and refuses those that name the submodule.
"""

from __future__ import annotations

import re
from typing import Any

from grimp import ImportGraph
from importlinter import Contract, ContractCheck, fields, output


class SubmoduleContract(Contract):
    """Only ``allowed_modules`` (and their descendants) import ``submodule``.

    Options: ``submodule`` (``aiohttp.web``), ``allowed_modules`` (module names).
    """

    type_name = "submodule"

    submodule = fields.StringField()
    allowed_modules = fields.ListField(subfield=fields.StringField())

    def check(self, graph: ImportGraph, verbose: bool) -> ContractCheck:
        package, _, sub = str(self.submodule).rpartition(".")
        # `from aiohttp import web`, `from aiohttp.web import x`, `import aiohttp.web`,
        # `from aiohttp.web_response import ...` (web's own implementation modules).
        named = re.compile(
            rf"from\s+{re.escape(package)}\s+import\s+(\(?\s*)?([\w\s,]*\b)?{sub}\b"
            rf"|\b{re.escape(package)}\.{sub}(\b|_)"
        )
        allowed = [str(m) for m in self.allowed_modules]  # type: ignore[attr-defined]
        found: list[dict[str, Any]] = []
        if package not in graph.modules:
            return ContractCheck(kept=True, warnings=[], metadata={"found": found})
        for importer in sorted(graph.find_modules_that_directly_import(package)):
            if any(importer == a or importer.startswith(a + ".") for a in allowed):
                continue
            for detail in graph.get_import_details(importer=importer, imported=package):
                if named.search(detail["line_contents"]):
                    found.append({"importer": importer, **detail})
        return ContractCheck(kept=not found, warnings=[], metadata={"found": found})

    def render_broken_contract(self, check: ContractCheck) -> None:
        for f in check.metadata["found"]:
            output.print_error(
                f"{f['importer']} imports {self.submodule} "
                f"(l.{f['line_number']}: {f['line_contents']})"
            )
            output.new_line()
