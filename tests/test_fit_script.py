"""scripts/fit_answer_model.py: it must run when the stored model is of another version,
which is exactly when it is needed, and its choices follow the figures it measures."""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from docqa import engine as engine_module
from docqa.answer import confidence
from docqa.config import Settings
from docqa.engine import Engine
from fakes import TableEmbedder, make_index, unit

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "fit_answer_model.py"


@pytest.fixture
def fit_script(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    pytest.importorskip("sklearn")  # the script's own dependency (the `fit` extra)
    pytest.importorskip("transformers")  # it imports the training script (the `build` extra)
    monkeypatch.syspath_prepend(str(SCRIPT.parent))
    spec = importlib.util.spec_from_file_location("fit_answer_model", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # its dataclasses look it up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def stale_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A stored model of an earlier version."""
    path = tmp_path / "answer_model.json"
    record = {"version": 2, "confidence": {"features": ["old"], "weights": [1.0], "bias": 0.0}}
    path.write_text(json.dumps(record), encoding="utf-8")
    monkeypatch.setattr(confidence, "MODEL_PATH", path)
    monkeypatch.setattr(engine_module, "default_model", engine_module.default_model)
    confidence.default_model.cache_clear()
    yield
    confidence.default_model.cache_clear()


def test_engines_load_for_a_refit_while_the_stored_model_has_other_features(
    fit_script: ModuleType, stale_model: None
) -> None:
    index = make_index([("NATO met in Lisbon in 2010.", [unit(1, 0, 0, 0)])], [unit(1, 0, 0, 0)])
    embedder = TableEmbedder({})
    with pytest.raises(confidence.AnswerModelError, match="version 2"):
        Engine.from_index(index, Settings(), embedder)
    fit_script.allow_stale_model()
    assert Engine.from_index(index, Settings(), embedder).index is index


def sample(fit_script: ModuleType, article: str, answerable: bool, f1: float) -> object:
    return fit_script.Sample(article, answerable, answerable and f1 >= 0.5, f1, {}, {}, 1.0)


def test_the_cut_is_the_one_with_the_best_squad2_f1(fit_script: ModuleType) -> None:
    samples = [
        sample(fit_script, "a", True, 1.0),
        sample(fit_script, "a", False, 0.0),
        sample(fit_script, "b", False, 0.0),
    ]
    import numpy as np

    # 0.3 and 0.6: only a cut in (0.3, 0.6] answers the first and abstains on the others
    probabilities = np.array([0.6, 0.3, 0.3])
    assert fit_script.choose_cut(samples, probabilities) == pytest.approx(0.31)
    assert fit_script.squad2_f1(samples, probabilities, 0.31) == pytest.approx(1.0)


def test_the_cut_abstains_on_at_most_the_allowed_share_of_answerable_questions(
    fit_script: ModuleType,
) -> None:
    import numpy as np

    # abstaining on every answerable question at 0.2 would score best on the many
    # unanswerable ones, but abstains on all answerable: the bound keeps the cut under 0.2
    samples = [sample(fit_script, "a", True, 0.5) for _ in range(10)]
    samples += [sample(fit_script, "a", False, 0.0) for _ in range(90)]
    probabilities = np.array([0.2] * 10 + [0.1] * 90)
    cut = fit_script.choose_cut(samples, probabilities)
    assert cut <= 0.2
    assert np.mean(probabilities[:10] < cut) <= fit_script.MAX_FALSE_ABSTENTION


def test_the_skip_cut_loses_at_most_the_allowed_share_of_right_answers(
    fit_script: ModuleType,
) -> None:
    import numpy as np

    samples = [sample(fit_script, "a", True, 1.0) for _ in range(100)]
    samples += [sample(fit_script, "a", False, 0.0) for _ in range(50)]
    probabilities = np.array([0.05] + [0.45] * 99 + [0.02] * 50)
    skip = fit_script.choose_skip(samples, probabilities)
    right = np.array([s.right for s in samples])
    assert (probabilities[right] < skip).sum() <= 1
    assert skip == pytest.approx(0.45)
