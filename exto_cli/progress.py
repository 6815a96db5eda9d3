"""Progress of a long listing on stderr: a rich bar on a terminal, or plain lines."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from exto_cli.listing import Progress, minimum_seconds, pages_needed
from exto_cli.output import Printer
from exto_cli.records import Page

if TYPE_CHECKING:
    from rich.progress import Progress as RichBar


def _rich_bar(printer: Printer, unit: str, rows: str) -> RichBar:
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn
    from rich.progress import Progress as RichBar

    return RichBar(
        TextColumn(unit),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(f"{{task.fields[rows]}} {rows}, {{task.fields[speed]}}, {{task.fields[left]}}"),
        console=printer.console,
        transient=True,
    )


def _plan_line(pages: int, rate: float) -> str:
    if rate <= 0:
        return f"fetching {pages} pages (no pacing)"
    return (
        f"fetching {pages} pages: {pages} requests, at least "
        f"{minimum_seconds(pages, rate):.0f} s at {rate:g} requests/s"
    )


class _Counting(Progress):
    def __init__(self, printer: Printer, rate_per_second: float) -> None:
        self.printer = printer
        self.rate = rate_per_second
        self.pages_total: int | None = None
        self.done_pages = 0
        self.rows = 0
        self.started = time.monotonic()

    def plan(self, first: Page, page_size: int, limit: int | None) -> None:
        self.pages_total = pages_needed(first, page_size, limit)
        if self.pages_total and self.pages_total > 1:
            self.printer.note(_plan_line(self.pages_total, self.rate))

    def advance(self, page: Page) -> None:
        self.done_pages += 1
        self.rows += len(page.rows)

    def seconds_left(self) -> float | None:
        if self.pages_total is None or self.rate <= 0:
            return None
        return max(0, self.pages_total - self.done_pages) / self.rate


class PlainProgress(_Counting):
    """One line every ``every`` pages, for logs (``--progress plain``)."""

    def __init__(self, printer: Printer, rate_per_second: float, every: int = 10) -> None:
        super().__init__(printer, rate_per_second)
        self.every = every

    def advance(self, page: Page) -> None:
        super().advance(page)
        if self.done_pages % self.every == 0 or self.done_pages == self.pages_total:
            elapsed = max(time.monotonic() - self.started, 1e-9)
            of = f"/{self.pages_total}" if self.pages_total else ""
            left = self.seconds_left()
            tail = f", about {left:.0f} s left" if left is not None else ""
            self.printer.note(
                f"page {self.done_pages}{of}, {self.rows} rows, "
                f"{self.done_pages / elapsed:.1f} pages/s{tail}"
            )


class BarProgress(_Counting):
    """A rich progress bar on stderr; time left comes from the rate limit."""

    def __init__(self, printer: Printer, rate_per_second: float) -> None:
        super().__init__(printer, rate_per_second)
        self.bar: RichBar | None = None
        self.task: Any = None

    def plan(self, first: Page, page_size: int, limit: int | None) -> None:
        super().plan(first, page_size, limit)
        if not self.pages_total or self.pages_total < 2:
            return
        self.bar = _rich_bar(self.printer, "pages", "rows")
        self.task = self.bar.add_task("export", total=self.pages_total, rows=0, speed="", left="")
        self.bar.start()

    def advance(self, page: Page) -> None:
        super().advance(page)
        if self.bar is None:
            return
        elapsed = max(time.monotonic() - self.started, 1e-9)
        left = self.seconds_left()
        self.bar.update(
            self.task,
            completed=self.done_pages,
            rows=self.rows,
            speed=f"{self.rows / elapsed:,.0f} rows/s",
            left=f"~{left:.0f} s left" if left is not None else "",
        )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None


def choose(mode: str, printer: Printer, stderr_is_tty: bool, rate_per_second: float) -> Progress:
    if printer.quiet or mode == "none":
        return Progress()
    if mode == "plain":
        return PlainProgress(printer, rate_per_second)
    if mode == "bar" or (mode == "auto" and stderr_is_tty):
        return BarProgress(printer, rate_per_second)
    return Progress()


class BatchProgress:
    """Batches and records of a bulk load: a bar on a terminal, else nothing."""

    def __init__(self, printer: Printer, total_batches: int, rate_per_second: float) -> None:
        self.rate = rate_per_second
        self.total = total_batches
        self.records = 0
        self.started = time.monotonic()
        self.bar: RichBar | None = _rich_bar(printer, "batches", "records")
        self.task = self.bar.add_task("load", total=total_batches, rows=0, speed="", left="")
        self.done = 0
        self.bar.start()

    def advance(self, batch: Any, outcome: Any) -> None:
        self.done += 1
        self.records += batch.size
        elapsed = max(time.monotonic() - self.started, 1e-9)
        left = (self.total - self.done) / self.rate if self.rate > 0 else None
        if self.bar is not None:
            self.bar.update(
                self.task,
                completed=self.done,
                rows=self.records,
                speed=f"{self.records / elapsed:,.0f} records/s",
                left=f"~{left:.0f} s left" if left is not None else "",
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None


class _NoBatchProgress:
    def advance(self, batch: Any, outcome: Any) -> None: ...

    def close(self) -> None: ...


def batch_progress(
    printer: Printer, stderr_is_tty: bool, total_batches: int, rate_per_second: float
) -> BatchProgress | _NoBatchProgress:
    if printer.quiet or not stderr_is_tty or total_batches < 2:
        return _NoBatchProgress()
    return BatchProgress(printer, total_batches, rate_per_second)
