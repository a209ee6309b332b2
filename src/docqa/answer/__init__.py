"""The answer side: a question (and its conversation) -> ranked passages -> a short answer
read from them, its evidence and citations, and a calibrated confidence or an abstention.

Read top to bottom, the path of a question:

    conversation.py  a follow-up becomes a standalone query (earlier turns' subjects)
    retrieval.py     query -> ranked Hits and their scored sentences (dense + BM25, fused)
    kinds.py         what kind of answer the question asks for (a date, a number, a name)
    reader.py        question + the top passages -> the best span and its no-answer margin
    confidence.py    retrieval and reader features -> a calibrated probability
    compose.py       all of it -> Composed: the answer, short answer, citations, or abstention

docqa.engine joins them to a loaded index; the CLI and the service call the engine.
"""
