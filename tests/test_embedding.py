"""The real embedding model: sentence-transformers and its ONNX export agree."""

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from docqa.indexing.embedding import (
    DEFAULT_MODEL,
    Embedder,
    ModelNotFoundError,
    OnnxEmbedder,
    SentenceTransformerEmbedder,
    export_onnx,
    quantize_onnx,
    resolve_model_path,
)

pytestmark = pytest.mark.model

SRC = Path(__file__).resolve().parents[1] / "src"
MINILM_DIMENSION = 384
SENTENCES = [
    "What did the 2023 EU-NATO joint declaration commit to?",
    "Cooperation",
    "The alliance expanded its cyber-defence pledge after the summit in Vilnius.",
    # Longer than max_seq_length (256 tokens), so both backends must truncate alike.
    " ".join(["Member states reaffirmed their shared commitment to collective defence."] * 40),
]


@pytest.fixture(scope="module")
def onnx_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_onnx(resolve_model_path(DEFAULT_MODEL), tmp_path_factory.mktemp("onnx") / "fp32")


@pytest.fixture(scope="module")
def st_embedder() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder(DEFAULT_MODEL)


@pytest.fixture(scope="module")
def onnx_embedder(onnx_dir: Path) -> OnnxEmbedder:
    return OnnxEmbedder(onnx_dir, batch_size=2)


@pytest.fixture(params=["sentence-transformers", "onnx"])
def embedder(request: pytest.FixtureRequest) -> Embedder:
    fixture = {"sentence-transformers": "st_embedder", "onnx": "onnx_embedder"}[request.param]
    embedder: Embedder = request.getfixturevalue(fixture)
    return embedder


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_vectors_are_float32_unit_rows_of_model_dimension(embedder: Embedder) -> None:
    vectors = embedder.embed(SENTENCES)
    assert vectors.shape == (len(SENTENCES), MINILM_DIMENSION)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_empty_input_gives_zero_rows(embedder: Embedder) -> None:
    vectors = embedder.embed([])
    assert vectors.shape == (0, MINILM_DIMENSION)
    assert vectors.dtype == np.float32


def test_both_backends_report_the_same_model(
    st_embedder: SentenceTransformerEmbedder, onnx_embedder: OnnxEmbedder
) -> None:
    assert (onnx_embedder.name, onnx_embedder.dimension) == (DEFAULT_MODEL, MINILM_DIMENSION)
    assert (st_embedder.name, st_embedder.dimension) == (DEFAULT_MODEL, MINILM_DIMENSION)


def test_onnx_vectors_match_sentence_transformers(
    st_embedder: SentenceTransformerEmbedder, onnx_embedder: OnnxEmbedder
) -> None:
    similarity = cosines(st_embedder.embed(SENTENCES), onnx_embedder.embed(SENTENCES))
    assert similarity.min() > 0.9999, similarity


def test_onnx_vector_does_not_depend_on_batch_neighbours(onnx_embedder: OnnxEmbedder) -> None:
    alone = onnx_embedder.embed(SENTENCES[:1])
    padded = onnx_embedder.embed(SENTENCES)[:1]
    assert cosines(alone, padded)[0] > 0.99999


def test_int8_vectors_stay_close_to_sentence_transformers(
    onnx_dir: Path, st_embedder: SentenceTransformerEmbedder
) -> None:
    int8 = OnnxEmbedder(quantize_onnx(onnx_dir, onnx_dir.with_name("int8")))
    similarity = cosines(st_embedder.embed(SENTENCES), int8.embed(SENTENCES))
    assert int8.precision == "int8"
    assert similarity.min() > 0.98, similarity


def test_export_leaves_no_temporary_files(onnx_dir: Path) -> None:
    assert sorted(p.name for p in onnx_dir.parent.iterdir() if p.name != "int8") == ["fp32"]
    assert sorted(p.name for p in onnx_dir.iterdir()) == [
        "embedder.json",
        "model.onnx",
        "tokenizer.json",
    ]


def test_onnx_embedder_does_not_import_torch(onnx_dir: Path) -> None:
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from docqa.indexing.embedding import OnnxEmbedder\n"
        f"OnnxEmbedder(Path({str(onnx_dir)!r})).embed(['a question'])\n"
        "heavy = {'torch', 'transformers', 'sentence_transformers'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
    }
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_missing_model_folder_names_the_folder(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    with pytest.raises(ModelNotFoundError, match=re.escape(str(missing))):
        resolve_model_path(str(missing))


def test_missing_onnx_folder_says_how_to_export(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match=r"lacks model\.onnx.*export_onnx"):
        OnnxEmbedder(tmp_path)
