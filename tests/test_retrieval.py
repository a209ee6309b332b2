"""Ranking and reranking with hand-built vectors: the expected orders follow from the vectors."""

from __future__ import annotations

import pytest

from docqa.answer.retrieval import (
    Expectation,
    dense_ranking,
    expectation_of,
    fits_answer_type,
    lexical_ranking,
    search,
    spells_out,
    term_weights,
)
from docqa.config import Settings
from docqa.indexing.lexical import tokenize
from fakes import TableEmbedder, make_index, unit

SETTINGS = Settings(candidates=10)


def test_dense_ranking_orders_chunks_by_cosine() -> None:
    index = make_index(
        [
            ("Alpha one.", [unit(1, 0, 0, 0)]),
            ("Beta two.", [unit(0, 1, 0, 0)]),
            ("Gamma.", [unit(0, 0, 1, 0)]),
        ],
        [unit(1, 0, 0, 0), unit(1, 1, 0, 0), unit(0, 0, 1, 0)],
    )
    ranking = dense_ranking(index, unit(1, 0.2, 0, 0), 3)
    assert ranking.rows == [0, 1, 2]
    assert ranking.scores[0] == pytest.approx(
        float(unit(1, 0.2, 0, 0) @ unit(1, 0, 0, 0)), abs=1e-6
    )


def test_lexical_ranking_leaves_out_chunks_without_a_query_term() -> None:
    index = make_index(
        [("The treaty of Maastricht.", [unit(1, 0, 0, 0)]), ("Cyber defence.", [unit(0, 1, 0, 0)])],
        [unit(1, 0, 0, 0), unit(0, 1, 0, 0)],
    )
    ranking = lexical_ranking(index, tokenize(["Maastricht treaty"])[0], 10)
    assert ranking.rows == [0]


def test_rare_query_terms_weigh_more_than_common_ones() -> None:
    index = make_index(
        [
            ("NATO and Kosovo.", [unit(1, 0, 0, 0)]),
            ("NATO again.", [unit(1, 0, 0, 0)]),
            ("NATO.", [unit(1, 0, 0, 0)]),
        ],
        [unit(1, 0, 0, 0)] * 3,
    )
    weights = term_weights(index, tokenize(["NATO Kosovo"])[0])
    assert weights["kosovo"] > weights["nato"]


def test_a_chunk_wins_by_its_best_sentence_not_its_average() -> None:
    query = unit(0, 0, 1, 0)
    index = make_index(
        [
            # chunk 0 is close as a whole, but no single sentence is as close as chunk 1's second
            ("First filler here. Second filler here.", [unit(0.5, 0, 1, 0), unit(0.5, 0, 1, 0)]),
            ("Unrelated words. Exactly matching sentence.", [unit(1, 0, 0, 0), unit(0, 0, 1, 0)]),
        ],
        [unit(0.2, 0, 1, 0), unit(1, 0, 0.5, 0)],
    )
    retrieval = search(index, TableEmbedder({"which one": query}), "which one", 2, SETTINGS)
    assert [hit.chunk.id for hit in retrieval.hits] == ["c1", "c0"]
    assert retrieval.sentences[0].row == 1 and retrieval.sentences[0].start > 0


def test_shared_query_terms_break_a_tie_in_similarity() -> None:
    query = unit(1, 1, 0, 0)
    index = make_index(
        [
            ("Galileo is a programme.", [unit(1, 0, 0, 0)]),
            ("Copernicus is a programme.", [unit(0, 1, 0, 0)]),
        ],
        [unit(1, 0, 0, 0), unit(0, 1, 0, 0)],
    )
    retrieval = search(
        index, TableEmbedder({"what is copernicus": query}), "what is copernicus", 2, SETTINGS
    )
    assert retrieval.hits[0].chunk.id == "c1"


def test_a_when_question_prefers_the_sentence_with_a_date() -> None:
    query = unit(1, 1, 0, 0)
    index = make_index(
        [
            ("The summit was held in Lisbon.", [unit(1, 0, 0, 0)]),
            ("The summit was held in 2010.", [unit(0, 1, 0, 0)]),
        ],
        [unit(1, 0, 0, 0), unit(0, 1, 0, 0)],
    )
    question = "when was the summit held"
    retrieval = search(index, TableEmbedder({question: query}), question, 2, SETTINGS)
    assert retrieval.hits[0].chunk.id == "c1"
    assert [s.fits for s in retrieval.sentences] == [True, False]


def test_passages_cited_in_the_previous_turn_win_a_tie() -> None:
    query = unit(1, 1, 0, 0)
    index = make_index(
        [
            ("It operated in Kabul.", [unit(1, 0, 0, 0)]),
            ("It operated in Baghdad.", [unit(0, 1, 0, 0)]),
        ],
        [unit(1, 0, 0, 0), unit(0, 1, 0, 0)],
    )
    embedder = TableEmbedder({"where": query})
    assert search(index, embedder, "where", 2, SETTINGS).hits[0].chunk.id == "c0"
    carried = search(index, embedder, "where", 2, SETTINGS, carried=frozenset({"c1"}))
    assert carried.hits[0].chunk.id == "c1"


def test_dense_and_lexical_modes_rank_by_one_signal_only() -> None:
    query = unit(1, 0, 0, 0)
    index = make_index(
        [
            ("Close in meaning.", [unit(1, 0, 0, 0)]),
            ("Words about Maastricht.", [unit(0, 1, 0, 0)]),
        ],
        [unit(1, 0, 0, 0), unit(0, 1, 0, 0)],
    )
    embedder = TableEmbedder({"Maastricht": query})
    assert search(index, embedder, "Maastricht", 2, SETTINGS, mode="dense").hits[0].chunk.id == "c0"
    assert [
        h.chunk.id for h in search(index, embedder, "Maastricht", 2, SETTINGS, mode="lexical").hits
    ] == ["c1"]


def test_hit_scores_lie_between_zero_and_one() -> None:
    query = unit(1, 0, 0, 0)
    index = make_index([("Same words same words.", [unit(1, 0, 0, 0)])], [unit(1, 0, 0, 0)])
    retrieval = search(index, TableEmbedder({"same words": query}), "same words", 1, SETTINGS)
    assert 0.0 <= retrieval.hits[0].score <= 1.0


@pytest.mark.parametrize(
    ("question", "sentence", "fits"),
    [
        ("When did EUPOL operate?", "It operated from June 2007 to December 2016.", True),
        ("When did EUPOL operate?", "It operated in Afghanistan.", False),
        ("What is missing when it comes to cyber?", "There is a lack of guidance.", True),
        ("How many troops were committed?", "Up to 60,000 troops by 2003.", True),
        (
            "How many member countries does NATO have?",
            "NATO countries approve 42 joint measures.",
            False,
        ),
        ("How much money did the EU give?", "The EU helped to finance civilian projects.", False),
        ("How much money did the EU give?", "The EU gave 5 million euros.", True),
        ("Where is the Centre based?", "The Centre coordinates with the Centre.", False),
        ("Where is the EU Cell established?", "It is established in Monse, Belgium.", True),
    ],
)
def test_sentences_are_checked_against_the_kind_of_answer_asked_for(
    question: str, sentence: str, fits: bool
) -> None:
    assert fits_answer_type(expectation_of(question), sentence) is fits


def test_a_definition_question_recognises_the_sentence_that_spells_the_term_out() -> None:
    expectation = expectation_of("wat is tadic")
    assert expectation.kind == "definition"
    assert spells_out(expectation, "It is covered by the Transatlantic Cooperation (TADIC).")
    assert not spells_out(expectation, "Under this initiative (since 2016), NATO works with EDA.")


def test_a_question_without_a_recognised_kind_accepts_any_sentence() -> None:
    assert expectation_of("Why does cooperation matter?") == Expectation(
        named=frozenset({"why", "does", "cooperation", "matter"})
    )
