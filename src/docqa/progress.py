"""Progress bars on stderr for index builds: one bar per stage, nothing else."""

from __future__ import annotations

from types import TracebackType
from typing import Any


class ProgressBars:
    """A `Progress` callback that draws one tqdm bar per stage and closes them at the end."""

    def __init__(self, disable: bool | None = None) -> None:
        self.bars: dict[str, Any] = {}
        self.disable = disable

    def __call__(self, stage: str, done: int, total: int) -> None:
        from tqdm import tqdm

        bar = self.bars.get(stage)
        if bar is None:
            for other in self.bars.values():  # the previous stage is over
                other.close()
            units = {"reading": "file", "embedding passages": "text", "embedding sentences": "text"}
            unit = units.get(stage, "step")
            bar = self.bars[stage] = tqdm(
                total=total, desc=stage, unit=unit, leave=True, disable=self.disable
            )
        bar.update(done - bar.n)

    def __enter__(self) -> ProgressBars:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        for bar in self.bars.values():
            bar.close()
