"""Settings, read from the environment (prefix DOCQA_) or given directly."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    """Everything docqa can be told: paths, model, retrieval and service limits."""

    model_config = SettingsConfigDict(env_prefix="DOCQA_", extra="ignore")

    corpus_dir: Path = Path("corpus")
    index_dir: Path = Path("index")
    model: str = "all-MiniLM-L6-v2"
    auto_rebuild: bool = True
    """Rebuild a missing or stale index on load instead of refusing it."""

    # Paragraph-sized passages: on the evaluation set 800/1280 gave hit@1 0.950 against
    # 0.941 for 500/800 and 0.908 for 300/480 (`docqa eval --compare`).
    chunk_target_chars: int = Field(800, ge=50)
    chunk_max_chars: int = Field(1280, ge=100)
    chunk_min_chars: int = Field(120, ge=0)
    chunker: Literal["sections", "windows"] = "sections"
    """sections: passages that follow the headings; windows: fixed character windows (a naive
    baseline that `docqa eval --compare` measures the section chunker against)."""
    window_chars: int = Field(500, ge=50)
    window_overlap: int = Field(100, ge=0)

    max_file_bytes: int = Field(100_000_000, ge=1)
    """Corpus files larger than this are skipped, named in the index report: 100 MB holds a
    text file of max_document_chars at up to 2 bytes a character (a PDF with images is large
    for little text, so the text has a limit of its own)."""
    max_document_chars: int = Field(50_000_000, ge=1)
    """A document whose extracted text is longer is skipped: 50 million characters is a shelf
    of long books, which at the measured indexing speed (README, "Performance": the 411 KB
    book in 7.4 s) takes ~15 minutes, not hours. A file skipped for either limit is judged
    again by the first run with other limits."""
    read_timeout_s: float = Field(60.0, ge=0)
    """Seconds the reader of one file (PDF, DOCX, ...) may take. Each file is read in a child
    process, killed at this limit: the file is skipped ("reading took over 60 s"), the others
    are indexed. 0 reads files in the indexing process itself, without the limits below."""
    read_memory_mb: int = Field(1024, ge=0)
    """Megabytes of memory the reader of one file may take beyond its process's start (an
    address-space limit, so no allocation passes it); over it the file is skipped ("needed
    over 1024 MB"). A DOCX whose parts unpack to more is skipped unread. 0: no limit."""
    max_pages: int = Field(5000, ge=1)
    """A PDF whose page tree declares more pages is skipped unread: a 50,000-page PDF of
    empty pages took 14 s to find nothing in, and books run to about 1,500 pages."""
    build_in_child: bool = True
    """The service runs each index build (after an upload, a deletion, POST /reindex) in a
    child process, so that what the build loads (the passage encoder, its buffers) leaves
    with it: the serving process stayed within 1.3x of its memory (README, "Indexing").
    false builds in the serving process (tests with a fake embedder do)."""

    k: int = Field(5, ge=1, le=50)
    candidates: int = Field(20, ge=1, le=200)
    abstain_below: float | None = Field(None, ge=0.0, le=1.0)
    """Confidence under which the answer says the documents do not cover the question; by
    default the cut stored with the fitted confidence (answer/answer_model.json)."""
    answer_max_chars: int = Field(300, ge=50)
    encoder_threads: int = Field(1, ge=0)
    """onnxruntime intra-op threads for query encoding; 0 lets onnxruntime choose. One by
    measurement (`docqa bench`): on 2 cores, 2 threads encode one query ~30% faster but two
    concurrent queries ~35% slower, as their spinning threads contend for the cores."""
    passage_precision: Literal["fp32", "int8"] = "fp32"
    """Weights of the encoder that embeds passages and sentences when indexing. fp32: with
    int8 passages the evaluation set fell (`docqa eval`: hit@1 0.951 -> 0.943, answer
    accuracy 0.894 -> 0.878, abstention precision 0.929 -> 0.897), past the quality gate."""
    encoder_precision: Literal["fp32", "int8"] = "int8"
    """Weights of the query encoder that `docqa index` saves; passages are always embedded in
    fp32. int8 (dynamic quantization) encodes a query ~1.7x faster at a cosine of 0.99 to
    fp32, and scored as well on the evaluation set (answer accuracy 0.908 against 0.899,
    hit@1 0.958 against 0.950)."""

    max_question_chars: int = Field(2000, ge=1)
    max_conversations: int = Field(1000, ge=1)
    conversation_ttl_s: float = Field(3600.0, gt=0)
    max_turns: int = Field(20, ge=1)
    max_conversation_bytes: int = Field(20_000, ge=1000)
    """Bytes of turns (as JSON) one conversation keeps; older turns go first, the newest
    always stays. A turn is at most ~19 KB (a 2,000-character question in 4-byte UTF-8, its
    query, its citations), so the default keeps at least one; with max_conversations this
    bounds the store (README, "Limits")."""
    redis_url: str | None = None
    """Redis for state that several workers share (conversations, rate-limit counters), e.g.
    redis://127.0.0.1:6379/0; unset, both stay in the process's memory."""

    api_key: str | None = None
    read_only: bool = False
    """Refuse (403) uploads, deletions and reindexing over HTTP; questions, search and the
    document list still work. The command line (`docqa add`, `remove`, `index`) is not
    affected."""
    cors_origins: Annotated[list[str], NoDecode] = []
    """Origins whose pages may call the API from a browser; none by default. In the
    environment: comma-separated (`https://a.example,https://b.example`) or a JSON list."""
    rate_limit_per_minute: int = Field(0, ge=0)
    """Requests per client IP per minute (/health excepted); 0 turns the limit off."""
    log_message_text: bool = False
    """Put the text of each question in the request log; off (the default: documents and
    questions may be private), only its metrics are logged."""
    allowed_hosts: Annotated[list[str], NoDecode] = []
    """Host names the service answers to (a request for any other gets 400), so that a page
    of another site cannot reach it through DNS rebinding. Empty: the localhost names and
    the address `docqa serve` listens on. In the environment: comma-separated or JSON."""
    local_hosts_local_only: bool = False
    """Answer a Host of localhost, 127.0.0.1 or [::1] only to clients on this machine.
    `docqa serve` turns it on when it listens on the network with the default host names:
    any client there could otherwise send `Host: 127.0.0.1` and be answered."""
    trusted_proxies: Annotated[list[str], NoDecode] = []
    """Addresses of reverse proxies whose X-Forwarded-For / X-Forwarded-Proto are believed
    (they then name the client for the rate limit and the log); none by default, since any
    client can send these headers. In the environment: comma-separated or JSON."""
    max_body_bytes: int = Field(64_000, ge=1024)
    max_upload_bytes: int = Field(101_000_000, ge=1024)
    """Largest upload (all files of one POST /documents together): one file at the
    max_file_bytes default, with room for the multipart framing (a 300-page PDF is ~5 MB)."""
    max_upload_files: int = Field(20, ge=1)
    """Most files in one upload."""
    upload_types: Annotated[list[str], NoDecode] = []
    """Suffixes the service accepts in uploads (e.g. `.pdf,.docx`); empty: every type docqa
    reads. In the environment: comma-separated or a JSON list."""
    upload_timeout_s: float = Field(900.0, gt=0)
    """Seconds an upload's body may take to arrive: 100 MB at 1 Mbit/s takes ~800 s (other
    bodies have client_timeout_s)."""
    client_timeout_s: float = Field(10.0, gt=0)
    """Seconds a client may take to send a request's headers, and again its body; a slower
    connection is closed (408 for a stalled body), so slow clients cannot pile up."""
    stale_check_s: float = Field(5.0, ge=0)
    """How long /health reuses its comparison of the corpus on disk with the loaded index."""

    @field_validator(
        "cors_origins", "allowed_hosts", "trusted_proxies", "upload_types", mode="before"
    )
    @classmethod
    def _split_list(cls, origins: object) -> object:
        if isinstance(origins, str):
            text = origins.strip()
            if text.startswith("["):
                return json.loads(text)
            return [origin.strip() for origin in text.split(",") if origin.strip()]
        return origins

    @field_validator("window_overlap")
    @classmethod
    def _windows_advance(cls, overlap: int, info: ValidationInfo) -> int:
        size = info.data.get("window_chars")
        if size is not None and overlap >= size:
            raise ValueError(
                f"must be smaller than window_chars ({size}), or the windows never advance"
            )
        return overlap
