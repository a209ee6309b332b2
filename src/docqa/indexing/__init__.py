"""The indexing side of docqa, read top to bottom: `corpus` (which files, their verdicts),
`chunking`, `embedding` and `encoders`, `vectors` (an index build's embedding), `lexical`
(BM25's words and scores), `index` (the index in memory, in segments), `store` (the index
on disk, loaded and checked), `manifest`, `writing`, `segments` (which segments a build
keeps) and `build` (the update that brings the index up to date, and opening it). The build
reads documents through `docqa.ingest` and is read by `docqa.answer`; nothing here imports
from the answering side."""
