"""Metrics, answer location, set loading and the report files, on hand-built outcomes.

Every expected value is worked out by hand in the test (or its comment), never by the code
under test.
"""

import json
from dataclasses import replace
from pathlib import Path

import pytest

from docqa.evaluation import (
    QUALITY_METRICS,
    EvaluationError,
    EvaluationSet,
    Outcome,
    Report,
    Target,
    auroc,
    baseline_record,
    exact_match,
    format_miss,
    hit_curve,
    load_dialogue_set,
    load_questions,
    load_squad_set,
    locate,
    normalize_answer,
    read_baseline,
    regressions,
    relevant_rank,
    summarise,
    summarise_by_kind,
    token_f1,
    write_report,
    write_text_atomic,
)
from docqa.evaluation.metrics import weak_match_rates
from docqa.models import Answer, Chunk, Document, Hit

ROOT = Path(__file__).resolve().parents[1]


def outcome(
    id: str = "q",
    kind: str = "factual",
    expected: str | None = "phrase",
    answered: bool = True,
    rank: int | None = 1,
    correct: bool = True,
    confidence: float = 0.9,
    passage_chars: tuple[int, ...] = (100,),
    total_ms: float = 10.0,
) -> Outcome:
    return Outcome(
        id,
        kind,
        f"question {id}?",
        expected,
        "an answer" if answered else "The document does not say.",
        answered,
        confidence,
        rank,
        correct,
        "Section",
        list(passage_chars),
        {"total": total_ms},
    )


def ranked(*ranks: int | None) -> list[Outcome]:
    return [outcome(id=f"q{i}", rank=r) for i, r in enumerate(ranks)]


def unanswerable(id: str, abstained: bool) -> Outcome:
    return outcome(id, "unanswerable", None, not abstained, None, abstained)


# --- retrieval metrics -----------------------------------------------------------------------


def test_hit_at_k_is_the_share_of_answers_found_in_the_top_k() -> None:
    metrics = summarise(ranked(1, 2, None, 4))
    assert metrics["hit@1"] == 0.25  # only rank 1
    assert metrics["hit@3"] == 0.5  # ranks 1 and 2
    assert metrics["hit@5"] == 0.75  # ranks 1, 2 and 4


def test_mrr_averages_reciprocal_ranks_with_a_missing_passage_as_zero() -> None:
    # (1/1 + 1/2 + 0 + 1/4) / 4 = 1.75 / 4
    assert summarise(ranked(1, 2, None, 4))["mrr@10"] == 0.4375


def test_mrr_at_ten_ignores_ranks_beyond_ten() -> None:
    # (1/10 + 0) / 2
    assert summarise(ranked(10, 12))["mrr@10"] == 0.05


def test_ndcg_discounts_the_single_relevant_passage_by_log2_of_rank_plus_one() -> None:
    # rank 1: 1/log2(2) = 1; rank 3: 1/log2(4) = 0.5; rank 7: 1/log2(8) = 1/3; absent: 0
    assert summarise(ranked(1, 3))["ndcg@10"] == 0.75
    assert summarise(ranked(7, None))["ndcg@10"] == pytest.approx(1 / 6, abs=1e-4)


def test_unanswerable_questions_stay_out_of_the_retrieval_metrics() -> None:
    metrics = summarise([*ranked(1, 2), unanswerable("u1", abstained=True)])
    assert metrics["hit@1"] == 0.5
    assert metrics["mrr@10"] == 0.75  # (1 + 1/2) / 2


def test_hit_curve_rises_with_k_to_the_share_found_at_all() -> None:
    curve = hit_curve(ranked(1, 2, None, 4), max_k=5)
    assert curve == [0.25, 0.5, 0.5, 0.75, 0.75]


# --- answers and abstention ------------------------------------------------------------------


def test_abstention_precision_recall_and_false_abstention() -> None:
    outcomes = [
        unanswerable("u1", abstained=True),
        unanswerable("u2", abstained=True),
        unanswerable("u3", abstained=False),
        outcome(id="a1", answered=False, correct=False),
        outcome(id="a2"),
        outcome(id="a3"),
        outcome(id="a4"),
    ]
    metrics = summarise(outcomes)
    assert metrics["abstention_precision"] == 0.6667  # 2 of the 3 abstentions were right
    assert metrics["abstention_recall"] == 0.6667  # 2 of the 3 unanswerable abstained
    assert metrics["false_abstention"] == 0.25  # 1 of the 4 answerable abstained


def test_abstention_precision_is_one_when_nothing_was_abstained() -> None:
    metrics = summarise([outcome(), unanswerable("u1", abstained=False)])
    assert metrics["abstention_precision"] == 1.0
    assert metrics["abstention_recall"] == 0.0


def test_answer_accuracy_counts_answerable_questions_only() -> None:
    outcomes = [outcome(id="a1"), outcome(id="a2", correct=False), unanswerable("u", True)]
    assert summarise(outcomes)["answer_accuracy"] == 0.5


def test_followup_accuracy_counts_follow_up_questions_only() -> None:
    outcomes = [
        outcome(id="f1", kind="followup"),
        outcome(id="f2", kind="followup"),
        outcome(id="f3", kind="followup", correct=False),
        outcome(id="x", kind="factual", correct=False),
    ]
    assert summarise(outcomes)["followup_accuracy"] == 0.6667


def test_mean_passage_chars_averages_every_passage_returned() -> None:
    outcomes = [outcome(id="a", passage_chars=(100, 300)), outcome(id="b", passage_chars=(200,))]
    assert summarise(outcomes)["mean_passage_chars"] == 200.0


def test_latency_percentiles_per_stage() -> None:
    outcomes = [outcome(id=str(ms), total_ms=ms) for ms in (10.0, 20.0, 30.0, 40.0, 50.0)]
    metrics = summarise(outcomes)
    assert metrics["total_ms_p50"] == 30.0
    assert metrics["total_ms_p95"] == 48.0  # numpy's linear interpolation: 40 + 0.8 * 10
    assert metrics["encode_ms_p50"] == 0.0  # a stage without timings reads as 0


def test_by_kind_gives_accuracy_and_hit_at_1_and_no_hit_for_unanswerable_kinds() -> None:
    outcomes = [
        outcome(id="a", kind="factual", rank=1),
        outcome(id="b", kind="factual", rank=2, correct=False),
        outcome(id="c", kind="near", expected=None, answered=False, rank=None),
    ]
    by_kind = summarise_by_kind(outcomes)
    assert by_kind["factual"] == {"questions": 2.0, "answer_accuracy": 0.5, "hit@1": 0.5}
    assert by_kind["near"] == {"questions": 1.0, "answer_accuracy": 1.0, "hit@1": None}


def test_misses_hold_wrong_answers_wrong_abstentions_and_passages_below_rank_1() -> None:
    outcomes = [
        outcome(id="right"),
        outcome(id="second", rank=2),
        outcome(id="wrong", correct=False),
        unanswerable("abstained", abstained=True),
        unanswerable("answered", abstained=False),
    ]
    assert [o.id for o in Report({}, outcomes).misses()] == ["second", "wrong", "answered"]


def test_a_miss_is_shown_with_question_expected_answer_and_rank() -> None:
    text = format_miss(outcome(id="q042", kind="number", rank=3, correct=False))
    assert text.splitlines()[0] == "q042 [number] wrong answer; right passage at rank 3"
    assert "question: question q042?" in text
    assert "expected: phrase" in text
    assert "answer:   an answer" in text
    assert "rank of right passage: 3" in text


# --- regressions against the baseline --------------------------------------------------------


def test_a_drop_within_the_tolerance_is_no_regression() -> None:
    assert regressions({"hit@1": 0.78}, {"hit@1": 0.80}) == []


def test_a_drop_beyond_the_tolerance_is_a_regression() -> None:
    found = regressions({"hit@1": 0.77, "mrr@10": 0.9}, {"hit@1": 0.80, "mrr@10": 0.9})
    assert len(found) == 1
    assert found[0].startswith("hit@1: 0.8000 -> 0.7700 (-0.0300")


def test_false_abstention_may_fall_but_not_rise_beyond_the_tolerance() -> None:
    assert regressions({"false_abstention": 0.01}, {"false_abstention": 0.10}) == []
    assert regressions({"false_abstention": 0.13}, {"false_abstention": 0.10}) != []


def test_metrics_the_baseline_does_not_hold_are_not_gated() -> None:
    assert regressions({"hit@1": 0.1, "total_ms_p50": 500.0}, {}) == []


def test_the_baseline_holds_quality_metrics_and_the_set_but_no_latency() -> None:
    outcomes = [outcome(id="a"), outcome(id="b", rank=2)]
    report = Report(summarise(outcomes), outcomes)
    record = baseline_record({"brief": (Path("eval/questions.jsonl"), report)}, {"k": 10})
    brief = record["sets"]["brief"]
    assert set(brief["metrics"]) == set(QUALITY_METRICS)
    assert brief["set"] == "eval/questions.jsonl"
    assert brief["questions"] == 2
    assert brief["missed"] == ["b"]
    assert record["configuration"] == {"k": 10}


def test_the_baseline_is_written_atomically_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "eval" / "baseline.json"
    write_text_atomic(path, json.dumps({"sets": {"brief": {"metrics": {"hit@1": 0.8}}}}))
    assert read_baseline(path) == {"sets": {"brief": {"metrics": {"hit@1": 0.8}}}}
    assert [p.name for p in path.parent.iterdir()] == ["baseline.json"]


def test_a_damaged_baseline_says_how_to_rewrite_it(tmp_path: Path) -> None:
    path = tmp_path / "baseline.json"
    path.write_text('{"metrics": ', encoding="utf-8")
    with pytest.raises(EvaluationError, match=r"not valid JSON.*--update-baseline"):
        read_baseline(path)


def test_a_missing_baseline_reads_as_none(tmp_path: Path) -> None:
    assert read_baseline(tmp_path / "baseline.json") is None


# --- locating the expected answer ------------------------------------------------------------

WRAPPED = (
    "Intro line.\n\n"
    "EU-NATO coordination slowed down at the end of \n"
    "the second decade of the new millennium. However, \n"
)


def test_locate_finds_the_original_offset_across_a_line_wrap() -> None:
    document = Document("brief.txt", WRAPPED)
    target = locate(
        "coordination slowed down at the end of the second decade",
        "end of the second decade",
        [document],
    )
    start = WRAPPED.index("end of \nthe second decade")
    assert target == Target("brief.txt", start, start + len("end of \nthe second decade"))


def test_locate_names_the_document_that_holds_the_evidence() -> None:
    documents = [Document("other.txt", "Nothing here."), Document("brief.txt", WRAPPED)]
    target = locate("the new millennium", "millennium", documents)
    assert target is not None
    assert target.document == "brief.txt"
    assert WRAPPED[target.start : target.end] == "millennium"


def test_locate_returns_none_when_no_document_holds_the_evidence() -> None:
    assert locate("a sentence that is not there", "not", [Document("b.txt", WRAPPED)]) is None


def chunk(id: str, start: int, end: int) -> Chunk:
    return Chunk(id, "brief.txt", "Section", 0, start, end, "x" * (end - start))


def answer_with(*chunks: Chunk) -> Answer:
    hits = tuple(Hit(c, rank, 1.0 / rank, 0.0, 0.0) for rank, c in enumerate(chunks, start=1))
    return Answer("q?", "a", True, 0.9, hits, (), {})


def test_the_relevant_passage_is_the_first_that_holds_the_whole_answer() -> None:
    # the answer spans 45..60: the first chunk only holds its start
    answer = answer_with(chunk("a", 0, 50), chunk("b", 40, 120), chunk("c", 30, 90))
    assert relevant_rank(answer, [Target("brief.txt", 45, 60)]) == 2


def test_any_of_several_gold_spans_makes_a_passage_relevant() -> None:
    answer = answer_with(chunk("a", 0, 50), chunk("b", 40, 120))
    golds = [Target("brief.txt", 100, 130), Target("brief.txt", 45, 60)]
    assert relevant_rank(answer, golds) == 2


def test_a_passage_of_another_document_is_not_relevant() -> None:
    answer = answer_with(chunk("a", 0, 100))
    assert relevant_rank(answer, [Target("other.txt", 10, 20)]) is None


# --- loading the set -------------------------------------------------------------------------


def record(id: str, **fields: object) -> str:
    item = {
        "id": id,
        "kind": "factual",
        "question": f"What about {id}?",
        "answer": "x",
        "evidence": "x y",
        "section": "Introduction",
        "follow_up_of": None,
    }
    item.update(fields)
    return json.dumps(item)


def write_set(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "set.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_load_questions_reads_records_and_skips_blank_lines(tmp_path: Path) -> None:
    path = write_set(tmp_path, record("q1"), "", record("q2", answer=None, evidence=None))
    questions = load_questions(path)
    assert [q.id for q in questions] == ["q1", "q2"]
    assert [q.answerable for q in questions] == [True, False]


def test_a_bad_json_line_is_named_by_its_number(tmp_path: Path) -> None:
    path = write_set(tmp_path, record("q1"), '{"id": "q2", "kind": ')
    with pytest.raises(EvaluationError, match=r"set\.jsonl:2: not valid JSON"):
        load_questions(path)


def test_a_line_that_is_not_an_object_is_refused(tmp_path: Path) -> None:
    path = write_set(tmp_path, '["q1", "factual"]')
    with pytest.raises(EvaluationError, match=r":1: expected a JSON object, got list"):
        load_questions(path)


def test_a_record_without_a_question_is_refused(tmp_path: Path) -> None:
    path = write_set(tmp_path, record("q1", question=None))
    with pytest.raises(EvaluationError, match=r":1: 'question' is missing"):
        load_questions(path)


def test_a_repeated_id_is_refused(tmp_path: Path) -> None:
    path = write_set(tmp_path, record("q1"), record("q1"))
    with pytest.raises(EvaluationError, match=r":2: id q1 is used twice"):
        load_questions(path)


def test_a_follow_up_of_an_unknown_question_is_refused(tmp_path: Path) -> None:
    path = write_set(tmp_path, record("q1", kind="followup", follow_up_of="q0"))
    with pytest.raises(EvaluationError, match=r":1: q1 follows up q0"):
        load_questions(path)


def test_a_missing_set_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(EvaluationError, match=r"nothing\.jsonl does not exist"):
        load_questions(tmp_path / "nothing.jsonl")


# --- the report folder -----------------------------------------------------------------------


def test_the_report_folder_gets_markdown_and_three_charts(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from docqa.config import Settings

    outcomes = [*ranked(1, 3), unanswerable("u1", abstained=True)]
    report = Report(summarise(outcomes), outcomes, summarise_by_kind(outcomes))
    evaluation_set = EvaluationSet("brief", Path("set.jsonl"), Path("corpus"), [])
    written = write_report(report, tmp_path, evaluation_set, Settings(), None)
    assert sorted(p.name for p in written) == [
        "accuracy_by_kind.png",
        "confidence.png",
        "hit_at_k.png",
        "report.md",
    ]
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in written if p.suffix == ".png")
    text = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "## Misses (1)" in text
    assert "q1 [factual] right passage at rank 3" in text


# --- short answers (official SQuAD 2.0 scoring) and confidence -------------------------------


def test_squad_normalisation_drops_case_punctuation_and_articles() -> None:
    assert normalize_answer("The  Rhine, (river)!") == "rhine river"


def test_exact_match_compares_normalised_answers() -> None:
    assert exact_match("the Rhine", "Rhine") == 1.0
    assert exact_match("Rhine river", "Rhine") == 0.0


def test_token_f1_is_the_harmonic_mean_of_token_precision_and_recall() -> None:
    # prediction "north sea coast" vs gold "the north sea": 2 common tokens,
    # precision 2/3, recall 2/2 -> F1 = 2 * (2/3 * 1) / (2/3 + 1) = 0.8
    assert token_f1("North Sea coast", "the North Sea") == pytest.approx(0.8)
    assert token_f1("Danube", "North Sea") == 0.0


def test_short_answer_scores_take_the_best_gold_and_count_abstaining_as_zero() -> None:
    found = outcome(id="a")
    found.short_answer, found.golds = "in 2004", ("2004", "in 2004")
    abstained = outcome(id="b", answered=False)
    abstained.short_answer, abstained.golds = None, ("1999",)
    metrics = summarise([found, abstained])
    assert metrics["short_em"] == 0.5
    assert metrics["short_f1"] == 0.5


def test_an_unanswerable_question_scores_one_in_squad2_only_when_abstained() -> None:
    abstained = unanswerable("u1", abstained=True)
    answered = unanswerable("u2", abstained=False)
    answered.short_answer = "1999"
    assert summarise([abstained, answered])["squad2_f1"] == 0.5


def test_auroc_is_the_chance_a_positive_outranks_a_negative() -> None:
    # pairs (positive, negative): (0.9, 0.1) yes, (0.9, 0.5) yes, (0.5, 0.1) yes,
    # (0.5, 0.5) tie = 1/2 -> 3.5 / 4
    assert auroc([0.9, 0.5], [0.1, 0.5]) == pytest.approx(0.875)
    assert auroc([0.1], [0.9]) == 0.0
    assert auroc([], [0.3]) == 0.5


def test_the_public_squad_set_locates_every_gold_answer_in_its_paragraph() -> None:
    squad = load_squad_set(ROOT / "eval" / "public" / "squad2")
    answerable = [q for q in squad.questions if q.answerable]
    assert len(squad.questions) == 2667 and len(answerable) == 1402
    texts = {p.name: p.read_text(encoding="utf-8") for p in squad.corpus_dir.glob("*.txt")}
    for question in answerable:
        spans = squad.targets[question.id]
        assert spans, question.id
        assert all(texts[t.document][t.start : t.end] in question.golds for t in spans)


def test_the_public_dialogues_chain_each_turn_to_the_one_before() -> None:
    quac = load_dialogue_set(ROOT / "eval" / "public" / "conversations")
    assert len(quac.questions) == 44
    first, second = quac.questions[0], quac.questions[1]
    assert first.follow_up_of is None and second.follow_up_of == first.id
    assert sum(not q.answerable for q in quac.questions) == 5


def test_weak_match_rates_count_the_relevant_passage_and_the_others() -> None:
    five = (100,) * 5
    outcomes = [
        replace(outcome("a", rank=1, passage_chars=five), weak_ranks=(4, 5)),
        replace(outcome("b", rank=2, passage_chars=five), weak_ranks=(2, 3)),
        replace(outcome("c", rank=None, passage_chars=five), weak_ranks=(1,)),
    ]

    rates = weak_match_rates(outcomes)

    assert rates["weak_relevant"] == 0.5  # b's passage with the answer is marked, a's is not
    assert rates["weak_other_sources"] == 4 / 13  # 4 + 4 + 5 other sources; 2 + 1 + 1 marked
