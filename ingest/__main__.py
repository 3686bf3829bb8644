"""`python -m ingest` (or `kb-ingest`): build the index for a corpus folder, or bring it up to date.

The folders are `--corpus` / `--index`, else `$KB_CORPUS` / `$KB_INDEX`, else
corpus/ and data/index/. The summary goes to stdout; progress, notes and
skipped files to stderr; a runtime error exits with status 1 and one line
`error: ...` (`index.cli`).
"""

from __future__ import annotations

import argparse
import sys
from functools import partial
from pathlib import Path

from tqdm import tqdm

from index.cli import fail, note
from index.config import DEFAULT_CORPUS, DEFAULT_INDEX, Config
from index.counting import document_count, plural
from index.embed.registry import embedder_for, get_embedder
from index.errors import StoreError
from ingest.logs import quiet_library_logs
from ingest.pipeline import Rules, Stage, build


class TqdmProgress:
    """One progress bar per stage, with counts, rate and time left."""

    def __init__(self) -> None:
        self.bars: dict[str, tqdm] = {}

    def __call__(self, stage: Stage, done: int, total: int) -> None:
        bar = self.bars.get(stage)
        if bar is None:
            width = max(len(s.label) for s in Stage)
            bar = self.bars[stage] = tqdm(total=total, desc=f"{stage.label:<{width}}", unit=stage.unit, file=sys.stderr)
        bar.total = total
        bar.update(done - bar.n)
        if done >= total:
            bar.close()

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ingest", description="Build the index for a corpus folder, or bring it up to date."
    )
    parser.add_argument(
        "--corpus", type=Path, help=f"documents folder, or one file (default: $KB_CORPUS, else {DEFAULT_CORPUS})"
    )
    parser.add_argument("--index", type=Path, help=f"index folder (default: $KB_INDEX, else {DEFAULT_INDEX})")
    parser.add_argument(
        "--strict", action="store_true", help="exit with an error, publishing nothing, if any file is skipped"
    )
    parser.add_argument(
        "--full",
        action="store_true",
        help="read every file again, even unchanged ones (text already embedded is still reused)",
    )
    parser.add_argument(
        "--ray",
        nargs="?",
        const="",
        metavar="ADDRESS",
        help="run on Ray: join the cluster at ADDRESS, or start a local Ray instance when none is given",
    )
    parser.add_argument("--workers", type=int, help="with --ray: embedding actors, one CPU each (default: all CPUs)")
    parser.add_argument(
        "--shards",
        type=int,
        help="also publish N serving shards, for python -m index serve --ray (0: none; default: as the live index)",
    )
    parser.add_argument(
        "--watch",
        action="store_true",
        help="after building, keep watching the corpus folder and update the index after each change",
    )
    args = parser.parse_args(argv)
    if args.watch and args.ray is not None:
        parser.error("--watch runs here, not on Ray: leave out --ray")
    if args.workers is not None and args.ray is None:
        parser.error("--workers needs --ray")
    if args.shards is not None and args.shards < 0:
        parser.error(f"--shards must be 0 (none) or more, got {args.shards}")
    try:
        config = Config.resolve(corpus=args.corpus, index=args.index)
    except ValueError as exc:  # a KB_* variable that makes no sense
        return fail(exc)
    quiet_library_logs()
    if args.watch:
        return watch(config, strict=args.strict, shards=args.shards)

    progress = TqdmProgress()
    try:
        if args.ray is None:
            report = build(
                config.corpus,
                config.index,
                embedder_for(config),
                progress=progress,
                rules=Rules(strict=args.strict, full=args.full),
                shards=args.shards,
                keep_versions=config.keep_versions,
            )
        else:
            from ingest.distributed import build_on_ray  # imports Ray only when asked for

            report = build_on_ray(
                config.corpus,
                config.index,
                partial(get_embedder, config.embedder, config),
                address=args.ray or None,
                workers=args.workers,
                progress=progress,
                rules=Rules(strict=args.strict, full=args.full),
                shards=args.shards,
                keep_versions=config.keep_versions,
            )
    except (StoreError, ValueError, OSError) as exc:
        progress.close()
        return fail(exc)
    progress.close()
    for message in report.notes:
        note(message)
    if report.published:
        print(
            f"indexed {document_count(report.files, report.documents)} as {plural(report.passages, 'passage')} "
            f"({report.embedded} embedded, {report.reused} reused) in {report.seconds:.1f}s -> {report.index_path}"
        )
    for item in report.skipped:
        print(f"skipped {item.source}: {item.reason}", file=sys.stderr)
    if report.skipped:
        print(f"{len(report.skipped)} file(s) skipped", file=sys.stderr)
    return 0


def watch(config: Config, strict: bool = False, shards: int | None = None) -> int:
    """Bring the index up to date, then again after every settled burst of changes, until Ctrl-C."""
    from ingest.watch import CorpusWatcher, build_now  # watchfiles only when watching

    if not config.corpus.is_dir():
        return fail(f"--watch needs a corpus folder; {config.corpus} is not one")
    embedder = embedder_for(config)
    watcher = CorpusWatcher(
        config.corpus,
        build_now(build, config.corpus, config.index, embedder, rules=Rules(strict=strict), shards=shards),
        on_event=lambda event: print(event.describe(), flush=True),
    )
    print(f"watching {config.corpus} for changes; Ctrl-C stops", file=sys.stderr, flush=True)
    try:
        watcher.run()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
