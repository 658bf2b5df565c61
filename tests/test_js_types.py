"""clients/js/index.d.ts is what scripts/generate_js_types.py writes from the OpenAPI
document: regenerate it and compare."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "generate_js_types.py"


def test_the_committed_type_declarations_are_current() -> None:
    spec = importlib.util.spec_from_file_location("generate_js_types", SCRIPT)
    assert spec is not None and spec.loader is not None
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    assert generator.TARGET.read_text() == generator.generate(), (
        "clients/js/index.d.ts is stale: run python scripts/generate_js_types.py"
    )
