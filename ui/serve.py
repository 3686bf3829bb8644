"""`streamlit run`, accepting links as long as browsers make them: `python -m ui.serve app.py [options]`.

Streamlit serves the app with uvicorn, whose HTTP parser (h11) answers a
request whose head is over 16 KB with "400 Bad Request" before Streamlit or
the app sees it: a shared `?q=` link of 100,000 characters (about 140 KB
encoded) gave a blank page instead of the question cut to 2,000 characters
at a word. Streamlit has no setting for that limit, so this launcher raises
it to `MAX_REQUEST_HEAD` (Chromium's own limit on a URL is 2 MB), keeps
uvicorn on h11 even where httptools is installed, and then
runs Streamlit's command line with the arguments given, unchanged.
`make run`, the browser tests and the benchmarks start the app this way.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

MAX_REQUEST_HEAD = 4 * 1024 * 1024


def allow_long_requests(limit: int = MAX_REQUEST_HEAD) -> None:
    """Make uvicorn servers created from now on in this process accept request heads up to `limit` bytes."""
    import uvicorn.config

    init = uvicorn.config.Config.__init__
    if getattr(init, "kb_head_limit", None) == limit:
        return

    @functools.wraps(init)
    def with_limit(self, *args, **kwargs):
        if kwargs.get("h11_max_incomplete_event_size") is None:
            kwargs["h11_max_incomplete_event_size"] = limit
        # With httptools installed (Ray Serve brings it), uvicorn's "auto" would pick it, whose
        # parser keeps its own fixed limit and answers a long link with 400 all the same.
        if kwargs.get("http", "auto") == "auto":
            kwargs["http"] = "h11"
        init(self, *args, **kwargs)

    with_limit.kb_head_limit = limit
    uvicorn.config.Config.__init__ = with_limit


APP = Path(__file__).resolve().parent.parent / "app.py"


def main(argv: list[str] | None = None) -> None:
    """Run `streamlit run ARGS` with long requests allowed; without a script first, this project's app.py."""
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0].startswith("-"):  # `kb-app` or `kb-app --server.port 8502`
        args = [str(APP), *args]
    allow_long_requests()
    from streamlit.web import cli

    cli.main(args=["run", *args], prog_name="streamlit")


if __name__ == "__main__":
    main()
