"""``python -m search.serve``: the HTTP service (FastAPI on uvicorn) over an index folder.

Listens on 127.0.0.1 unless told otherwise; OpenAPI documentation at ``/docs``. Writes need
``POLYSEEK_API_TOKEN`` (see ``search/service.py``)."""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys

from polyseek import settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m search.serve", description="Serve Polyseek's index over HTTP.")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface; default: %(default)s)")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on (default: %(default)s)")
    parser.add_argument("-i", "--index", default=None, help=f"index folder (default: ${settings.ENV_INDEX} or .polyseek/index)")
    parser.add_argument("--corpus", default=None,
                        help="folder POST /index/update reads (default: the corpus the index was built from)")
    parser.add_argument("--cors-origin", action="append", default=[], metavar="URL",
                        help="allow browser pages from this origin to call the API (repeatable; default: none)")
    parser.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"),
                        help="uvicorn's log level (default: %(default)s)")
    args = parser.parse_args(argv)

    import uvicorn

    from search.service import ENV_TOKEN, create_app

    if not _loopback(args.host):
        print(f"note: listening on {args.host}: reads are open to every machine that can reach it", file=sys.stderr)
    if not os.environ.get(ENV_TOKEN):
        print(f"note: {ENV_TOKEN} is not set: updates and watch changes are refused", file=sys.stderr)
    app = create_app(args.index, corpus_dir=args.corpus, cors_origins=args.cors_origin)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


if __name__ == "__main__":
    raise SystemExit(main())
