"""scripts/fit_answer_model.py: it must run when the stored model no longer matches the
features, which is exactly when it is needed."""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from docqa import answering
from docqa import engine as engine_module
from docqa.config import Settings
from docqa.engine import Engine
from fakes import TableEmbedder, make_index, unit

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "fit_answer_model.py"


@pytest.fixture
def fit_script(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    pytest.importorskip("sklearn")  # the script's own dependency (the `fit` extra)
    spec = importlib.util.spec_from_file_location("fit_answer_model", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # its dataclasses look it up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def stale_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A stored model fitted on features this version does not compute."""
    path = tmp_path / "answer_model.json"
    record = {"confidence": {"features": ["old"], "weights": [1.0], "bias": 0.0}}
    path.write_text(json.dumps(record), encoding="utf-8")
    monkeypatch.setattr(answering, "MODEL_PATH", path)
    monkeypatch.setattr(engine_module, "default_model", engine_module.default_model)
    answering.default_model.cache_clear()
    yield
    answering.default_model.cache_clear()


def test_engines_load_for_a_refit_while_the_stored_model_has_other_features(
    fit_script: ModuleType, stale_model: None
) -> None:
    index = make_index([("NATO met in Lisbon in 2010.", [unit(1, 0, 0, 0)])], [unit(1, 0, 0, 0)])
    embedder = TableEmbedder({})
    with pytest.raises(answering.AnswerModelError, match="other features"):
        Engine.from_index(index, Settings(), embedder)
    fit_script.allow_stale_model()
    assert Engine.from_index(index, Settings(), embedder).index is index
