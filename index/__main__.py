"""`python -m index` (or `kb-index`): ask questions of an index, describe it, or score it.

    python -m index query [QUESTION ...] [--file FILE] [--index DIR] [-k N] [--json] [--explain] [--where KEY=VALUE]
    python -m index mentions PHRASE [--index DIR] [--json] [--where KEY=VALUE]
    python -m index info [--index DIR] [--json]
    python -m index verify [--index DIR]
    python -m index eval --queries FILE --qrels FILE [--index DIR] [--mode dense|keyword|hybrid] [--json]
    python -m index eval --questions FILE [--index DIR] [--json]
    python -m index eval --feedback [FILE] [--index DIR] [--json]
    python -m index mcp [--index DIR] [--http --port N]
    python -m index serve [--index DIR] [--host 127.0.0.1] [--port 8000] [--workers N] [--allowed-host NAME ...]
    python -m index serve --ray [ADDRESS] --shards N --replicas R [--index DIR] [--host H] [--port P]
    python -m index gaps [--json] [--days N] [--export FILE] [--index DIR]

Each QUESTION argument is one question (quote it); `--file` adds one
question per line. `--json` prints one JSON object per question, one per
line, in input order. The index folder is `--index`, else `$KB_INDEX`, else
data/index. A runtime error exits with status 1 and one line `error: ...` on
stderr; a command line that makes no sense exits with 2 (`index.cli`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from index.cli import fail, note, one_line
from index.config import DEFAULT_INDEX, Config, one_thread_per_question
from index.display import format_answer, format_mentions
from index.errors import StoreError
from index.search.filters import FilterError, Where
from index.search.query import MAX_QUERY_CHARS, clean_query, not_text, query_is_cut
from index.search.settings import RetrievalMode, SearchSettings
from index.store.reader import StoredIndex, info_json, load, verify

if TYPE_CHECKING:
    from index.embed.registry import Embedder
    from index.search.searcher import Searcher

# Makes the searcher a command asks: `Searcher` itself unless a caller (a test) passes another.
SearcherFactory = Callable[[StoredIndex, "Embedder", SearchSettings], "Searcher"]


def main(argv: list[str] | None = None, *, make_searcher: SearcherFactory | None = None) -> int:
    """Run one command; returns the exit status.

    Args:
        argv: The command line without the program name (default: `sys.argv[1:]`).
        make_searcher: Makes the searcher that `query` and `eval` ask (default: `Searcher`).
    """
    parser = argparse.ArgumentParser(prog="python -m index", description="Query or inspect a knowledge-base index.")
    commands = parser.add_subparsers(dest="command", required=True)

    query = commands.add_parser("query", help="answer questions with cited passages")
    query.add_argument("questions", nargs="*", metavar="QUESTION", help="a question (quote it); several allowed")
    query.add_argument("--file", type=Path, help="a file with one question per line")
    query.add_argument("-k", type=int, default=5, help="passages per question (default: 5)")
    query.add_argument("--json", action="store_true", help="one JSON object per question, one per line")
    query.add_argument("--explain", action="store_true", help="show each hit's dense, keyword and fused rank")
    query.add_argument(
        "--log", action="store_true", help="log the questions for python -m index gaps (as the app and the API do)"
    )
    _add_where_option(query)
    _add_index_option(query)

    gaps = commands.add_parser("gaps", help="the logged questions the documents did not answer, grouped")
    gaps.add_argument("--json", action="store_true", help="one JSON object per question, one per line")
    gaps.add_argument("--days", type=int, help="only questions of the last N days (default: $KB_LOG_DAYS, else 90)")
    gaps.add_argument("--export", type=Path, metavar="FILE", help="also write them as a question set for eval")
    _add_index_option(gaps)

    mentions = commands.add_parser("mentions", help="every place a word or phrase occurs, by document")
    mentions.add_argument(
        "phrase",
        nargs="+",
        metavar="PHRASE",
        help='a word or a quoted phrase ("hip flexors" is the exact phrase); several are all looked for '
        "within one passage (hip flexors: both words, anywhere in one passage)",
    )
    mentions.add_argument("--json", action="store_true", help="print one JSON object")
    _add_where_option(mentions)
    _add_index_option(mentions)

    info = commands.add_parser("info", help="what the index holds")
    info.add_argument("--json", action="store_true", help="print the manifest as one JSON object")
    _add_index_option(info)

    check = commands.add_parser("verify", help="check every file of the index against its hash (loading checks sizes)")
    _add_index_option(check)

    evaluate = commands.add_parser("eval", help="score retrieval on BEIR files or a question set")
    evaluate.add_argument("--queries", type=Path, help='BEIR queries, JSON lines {"_id", "text"}')
    evaluate.add_argument("--qrels", type=Path, help="BEIR qrels TSV: query-id corpus-id score, with a header")
    evaluate.add_argument("--questions", type=Path, help='or: a question set, JSON lines {"query", "answer"}')
    evaluate.add_argument(
        "--feedback",
        nargs="?",
        const="",
        metavar="FILE",
        help="or: the 👍/👎 votes (default: feedback.jsonl in the index folder, where the app and the API store them)",
    )
    evaluate.add_argument(
        "--mode",
        choices=[m.value for m in RetrievalMode],
        default=RetrievalMode.HYBRID.value,
        help="retriever (default: hybrid)",
    )
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")
    _add_index_option(evaluate)

    serve = commands.add_parser("serve", help="answer questions over HTTP (a FastAPI app; docs at /docs)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: this machine only)")
    serve.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    serve.add_argument(
        "--workers", type=int, default=1, help="uvicorn worker processes, each with the index (default: 1)"
    )
    serve.add_argument(
        "--ray",
        nargs="?",
        const="",
        metavar="ADDRESS",
        help="serve on Ray Serve: join the cluster at ADDRESS, or start a local Ray instance when none is given",
    )
    serve.add_argument(
        "--shards", type=int, help="with --ray: shard deployments (the index must be built with as many)"
    )
    serve.add_argument("--replicas", type=int, default=1, help="with --ray: replicas of each shard (default: 1)")
    serve.add_argument(
        "--allowed-host",
        action="append",
        metavar="NAME",
        help="a name the Host header may give (repeatable; '*' for any; default: $KB_ALLOWED_HOSTS, "
        "else localhost, 127.0.0.1 and [::1])",
    )
    _add_index_option(serve)

    mcp = commands.add_parser("mcp", help="serve the index to agents over MCP (stdio, or streamable HTTP)")
    mcp.add_argument("--http", action="store_true", help="streamable HTTP on 127.0.0.1 at /mcp instead of stdio")
    mcp.add_argument("--port", type=int, default=8765, help="with --http: the port (default: 8765)")
    _add_index_option(mcp)

    args = parser.parse_args(argv)
    try:
        config = Config.resolve(index=args.index)
    except ValueError as exc:  # a KB_* variable that makes no sense
        return fail(exc)
    if args.command == "serve":
        return _serve(args, parser, config)
    if args.command == "mcp":
        return _mcp(args, parser, config)
    try:
        if args.command == "query":
            return _query(args, parser, config, make_searcher)
        if args.command == "mentions":
            return _mentions(args, parser, config)
        if args.command == "eval":
            return _eval(args, parser, config, make_searcher)
        if args.command == "verify":
            return _verify(config)
        if args.command == "gaps":
            return _gaps(args, parser, config)
        return _info(args, config)
    except (StoreError, OSError, ValueError) as exc:
        return fail(exc)


def _add_where_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--where",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="only documents that match: type=pdf|html|md|docx|txt|jsonl, folder=F, after=YYYY-MM-DD, "
        "before=YYYY-MM-DD, tag=T, title=WORDS (repeat it; one key's values are alternatives)",
    )


def _where(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Where | None:
    """The filter of `--where`, or None; a bad one is a usage error naming the allowed keys and values."""
    try:
        return Where.parse(args.where) or None
    except FilterError as exc:
        parser.error(f"--where: {exc}")


def _add_index_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--index", type=Path, help=f"index folder (default: $KB_INDEX, else {DEFAULT_INDEX})")


def _query(
    args: argparse.Namespace, parser: argparse.ArgumentParser, config: Config, make_searcher: SearcherFactory | None
) -> int:
    questions = list(args.questions)
    if args.file is not None:
        try:
            # "\n" only: str.splitlines() also breaks at U+2028, NEL, form feeds and more, which
            # would make one question two; "\r" of Windows line ends goes with the strip below.
            lines = args.file.read_text(encoding="utf-8").split("\n")
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"cannot read questions from {args.file}: {exc}") from None
        questions += [line.strip() for line in lines if line.strip()]
    if not questions:
        parser.error("give at least one QUESTION or --file FILE")
    if args.k < 1:
        parser.error(f"-k must be at least 1, got {args.k}")
    for number, question in enumerate(questions, start=1):
        reason = not_text(question)
        if reason is not None:
            parser.error(f"question {number} is not valid text: {reason}")
        if not clean_query(question):
            parser.error(f"question {number} is empty; ask a question in words")
    where = _where(args, parser)

    searcher = _searcher(config, make_searcher)
    for number, question in enumerate(questions):
        answer = searcher.search(question, k=args.k, where=where)
        if args.log:
            from index.gaps import log_question

            log_question(config.index, answer, searcher.stored.path.name)
        if query_is_cut(question):
            note(
                f"question {number + 1} has {len(question):,} characters; "
                f"only the first {MAX_QUERY_CHARS:,} or so are searched"
            )
        if args.json:
            print(json.dumps(answer.to_json(args.explain), ensure_ascii=False), flush=True)
        else:
            print(("\n" if number else "") + format_answer(answer, explain=args.explain), flush=True)
    return 0


def _mentions(args: argparse.Namespace, parser: argparse.ArgumentParser, config: Config) -> int:
    from index.search.mentions import MentionFinder, Phrase

    try:
        phrase = Phrase.parse(shell_phrase(args.phrase))
    except ValueError as exc:
        parser.error(str(exc))
    where = _where(args, parser)
    found = MentionFinder(load(config.index)).find(phrase, where)  # no model: mentions are found by their words
    if args.json:
        print(json.dumps(found.to_json(), ensure_ascii=False))
    else:
        print(format_mentions(found))
    return 0


def shell_phrase(arguments: list[str]) -> str:
    """The phrase of the command line: an argument holding several words was quoted, so it is an exact phrase."""
    return " ".join(f'"{a}"' if len(a.split()) > 1 and '"' not in a else a for a in arguments)


def _searcher(config: Config, make_searcher: SearcherFactory | None, settings: SearchSettings = SearchSettings()):
    from index.embed.registry import embedder_for  # imported here: `info` needs no model
    from index.search.searcher import Searcher

    one_thread_per_question()
    embedder = embedder_for(config)
    return (make_searcher or Searcher)(load(config.index, model=embedder.name), embedder, settings)


def _eval(
    args: argparse.Namespace, parser: argparse.ArgumentParser, config: Config, make_searcher: SearcherFactory | None
) -> int:
    from index import evaluate

    if args.feedback is not None:
        if args.questions is not None or args.queries is not None or args.qrels is not None:
            parser.error("give one of --feedback, --questions, or --queries and --qrels")
        return _eval_feedback(args, config)
    if (args.queries is None) != (args.qrels is None) or (args.questions is None) == (args.queries is None):
        parser.error("give either --queries and --qrels (BEIR), --questions, or --feedback")
    if args.questions is not None:
        questions = evaluate.read_questions(args.questions)
    else:
        queries, qrels = evaluate.read_queries(args.queries), evaluate.read_qrels(args.qrels)
    if args.questions is None:
        searcher = _searcher(config, make_searcher, evaluate.beir_settings())
        scores = evaluate.evaluate_beir(searcher, queries, qrels, mode=RetrievalMode.from_str(args.mode))
        if args.json:
            print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in scores.items()}))
        else:
            print(
                f"{args.mode}: nDCG@10 {scores['ndcg@10']:.4f}  Recall@100 {scores['recall@100']:.4f}  "
                f"MRR@10 {scores['mrr@10']:.4f}  ({scores['queries']} queries)"
            )
        return 0
    report = evaluate.evaluate_questions(_searcher(config, make_searcher), questions)
    if args.json:
        print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(report).items()}))
        return 0
    print(f"questions        {report.on_topic} on-topic, {report.off_topic} off-topic")
    print(f"recall@1         {report.recall_at_1:.3f}")
    print(f"recall@3         {report.recall_at_3:.3f}")
    print(f"MRR@10           {report.mrr:.3f}")
    print(
        f"answer sentence  {report.sentence_accuracy:.3f} (the highlight holds the answering sentence; "
        f"{report.highlight_sentences:.2f} sentences per highlight)"
    )
    print(f"answered         {report.answered_on_topic}/{report.on_topic} on-topic ({report.unsure_on_topic} unsure)")
    print(
        f"not answered     {report.refused_off_topic}/{report.off_topic} off-topic ({report.unsure_off_topic} unsure)"
    )
    print(f"decided right    {report.decided:.3f} of all questions (on-topic answered, off-topic not)")
    print(f"no-answer        precision {report.no_answer_precision:.3f}, recall {report.no_answer_recall:.3f}")
    return 0


def _eval_feedback(args: argparse.Namespace, config: Config) -> int:
    from index.evaluate import evaluate_feedback
    from index.feedback import FEEDBACK, read_votes

    path = Path(args.feedback) if args.feedback else config.index / FEEDBACK
    votes = read_votes(path)
    if not votes:
        raise ValueError(f"no votes in {path}: vote with 👍/👎 under an answer in the app, or POST /feedback")
    report = evaluate_feedback(_searcher(config, None), votes)
    if args.json:
        print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(report).items()}))
        return 0
    print(f"votes            {report.votes} ({report.up} up, {report.down} down) on {report.questions} question(s)")
    print(f"judged           {report.judged} question(s) with a passage marked as answering")
    print(f"recall@1         {report.recall_at_1:.3f}")
    print(f"recall@3         {report.recall_at_3:.3f}")
    print(f"MRR@10           {report.mrr:.3f}")
    print(f"misses           {report.misses} question(s) voted down with no passage named (recorded, not scored)")
    return 0


def _serve(args: argparse.Namespace, parser: argparse.ArgumentParser, config: Config) -> int:
    """Run the HTTP API until interrupted: under uvicorn here, or on Ray Serve with shards."""
    if not 1 <= args.port <= 65535:
        parser.error(f"--port must be between 1 and 65535, got {args.port}")
    from index.serve.app import HOSTS_VARIABLE, allowed_hosts_from

    if args.allowed_host:  # the workers (and the Ray router) read it from the environment
        os.environ[HOSTS_VARIABLE] = ",".join(args.allowed_host)
    allowed_hosts = allowed_hosts_from(os.environ.get(HOSTS_VARIABLE))
    if args.ray is None:
        if args.shards is not None or args.replicas != 1:
            parser.error("--shards and --replicas need --ray")
        if args.workers < 1:
            parser.error(f"--workers must be at least 1, got {args.workers}")
        import uvicorn

        # Each worker builds the app from the environment (index.serve.app.app_from_environment).
        os.environ.update({"KB_INDEX": str(config.index), "KB_EMBEDDER": config.embedder})
        uvicorn.run(
            "index.serve.app:app_from_environment",
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            log_level="info",
        )
        return 0
    if args.shards is None or args.shards < 1:
        parser.error(
            "--ray needs --shards N (N >= 1): as many as the index was built with (python -m ingest --shards N)"
        )
    if args.replicas < 1:
        parser.error(f"--replicas must be at least 1, got {args.replicas}")
    from index.serve.ray_serve import serve_on_ray  # imports Ray only when asked for

    try:
        serve_on_ray(
            config,
            args.ray or None,
            shards=args.shards,
            replicas=args.replicas,
            host=args.host,
            port=args.port,
            allowed_hosts=allowed_hosts,
        )
    except (StoreError, OSError, ValueError) as exc:
        return fail(exc)
    return 0


def _gaps(args: argparse.Namespace, parser: argparse.ArgumentParser, config: Config) -> int:
    from index.gaps import gaps, read_log, to_question_set

    if args.days is not None and args.days < 1:
        parser.error(f"--days must be at least 1, got {args.days}")
    found = gaps(read_log(config.index, days=args.days))
    if args.export is not None:
        args.export.write_text(to_question_set(found), encoding="utf-8")
        note(
            f"wrote {len(found)} question(s) to {args.export}; check them with: python -m index eval --questions {args.export}"
        )
    for gap in found:
        if args.json:
            print(json.dumps(gap.to_json(), ensure_ascii=False))
        else:
            source = f"  (closest: {gap.best_source})" if gap.best_source else ""
            print(f"{gap.count:>4}x  {gap.last_asked}  {gap.verdict:<12}  {one_line(gap.question)}{source}")
    if not found and not args.json:
        note(f"no unanswered questions logged in {config.index}")
    return 0


def _mcp(args: argparse.Namespace, parser: argparse.ArgumentParser, config: Config) -> int:
    """Serve the index over MCP until interrupted (stdout is the protocol's over stdio: nothing else goes there)."""
    if not 1 <= args.port <= 65535:
        parser.error(f"--port must be between 1 and 65535, got {args.port}")
    from index.serve.mcp import run

    one_thread_per_question()
    run(config, http=args.http, port=args.port, token=os.environ.get("KB_API_TOKEN") or None)
    return 0


def _verify(config: Config) -> int:
    stored = verify(config.index)
    m = stored.manifest
    print(
        f"ok: {stored.path}: {len(m.files)} files match their hashes ({m.passages} passages, {m.documents} documents)"
    )
    return 0


def _info(args: argparse.Namespace, config: Config) -> int:
    stored = load(config.index)
    if args.json:
        print(json.dumps(info_json(stored), ensure_ascii=False))
    else:
        print(describe(stored))
    return 0


def describe(stored: StoredIndex) -> str:
    m = stored.manifest
    s = m.settings
    lines = [
        f"index      {stored.path}",
        f"built      {m.built_at} from {m.corpus}",
        f"model      {m.model} ({m.dimensions} dimensions)",
        f"documents  {m.documents}",
        f"passages   {m.passages} ({m.locations} locations; duplicates share a passage)",
        f"chunking   max {s.max_tokens} tokens{'' if s.max_chars is None else f' and {s.max_chars:,} characters'}, "
        f"merge below {s.min_tokens}, near-duplicate at {s.near_duplicate_threshold}",
        f"vectors    {'exact (Flat)' if stored.dense.exact else 'approximate (' + m.vector_index + ')'}, "
        f"exact up to {s.exact_search_limit:,} passages; {m.sentences} answer-sentence vectors",
        f"skipped    {len(m.skipped)} file(s)",
    ]
    lines += [f"  {item.source}: {item.reason}" for item in m.skipped]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
