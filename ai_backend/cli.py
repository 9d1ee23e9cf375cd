# SPDX-License-Identifier: GPL-3.0-or-later
"""``standin-backend``: run the generation backend's HTTP API.

    standin-backend serve [--host 127.0.0.1] [--port 8765] [--engine sketch|diffusers]
                          [--models models.toml] [--token T] [--data DIR] [--plate-cache-mb 2048]

The token may also come from ``$STANDIN_BACKEND_TOKEN`` (a command line is visible to other users
of the machine), the data folder from ``$STANDIN_BACKEND_DATA`` (default
``~/.local/share/standin-backend``). Listening on anything but loopback needs a token. Engines are
imported only when chosen, so the sketch engine runs without torch. Ctrl+C / SIGTERM stops
gracefully: the running job is interrupted and queued again for the next start.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import pathlib
import sys

ENGINES = ("sketch", "diffusers")
PLATE_CACHE_MB = 2048


class CliError(Exception):
    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


def default_data_dir() -> pathlib.Path:
    configured = os.environ.get("STANDIN_BACKEND_DATA")
    if configured:
        return pathlib.Path(configured).expanduser()
    return pathlib.Path.home() / ".local" / "share" / "standin-backend"


def is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def load_engine(name: str, models_path: pathlib.Path | None, data_dir: pathlib.Path | None = None,
                plate_cache_mb: int = PLATE_CACHE_MB):
    """``(engine, registry)``; the engine's module is imported here, not before.

    The diffusers engine keeps its background plates in ``<data>/plate-cache`` so every job of a
    set and camera reuses them (otherwise each job's folder would hold its own), at most
    ``plate_cache_mb`` MiB of them: the least recently used go first.
    """
    registry = None
    if models_path is not None:
        try:
            from .models import load_registry

            registry = load_registry(models_path)
        except ImportError as error:
            raise CliError(f"the model registry could not be loaded ({error}).") from None
        except ValueError as error:
            raise CliError(f"{error}", code=2) from None
    if name == "sketch":
        try:
            from .engines.sketch import SketchEngine
        except ImportError as error:
            raise CliError(f"the sketch engine could not be loaded ({error}).") from None
        return SketchEngine(), registry
    if name == "diffusers":
        if registry is None:
            raise CliError("the diffusers engine needs the model registry: pass --models models.toml.", code=2)
        try:
            from .engines.diffusers_engine import DiffusersEngine
        except ImportError as error:
            raise CliError(f"the diffusers engine could not be loaded ({error}); install the backend "
                           f"extras (pip install 'standin[backend]') or use --engine sketch.") from None
        try:
            cache_dir = pathlib.Path(data_dir) / "plate-cache" if data_dir is not None else None
            return DiffusersEngine(registry, cache_dir=cache_dir, plate_cache_bytes=plate_cache_mb * 1024**2), registry
        except ImportError as error:
            raise CliError(f"the diffusers engine could not start ({error}); install the backend "
                           f"extras (pip install 'standin[backend]') or use --engine sketch.") from None
    raise CliError(f"unknown engine {name!r}; choose one of {', '.join(ENGINES)}.", code=2)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="standin-backend", description="StandIn's generation backend.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the HTTP API (v1) and the job runner")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to listen on (default 127.0.0.1; other addresses need --token)")
    serve.add_argument("--port", type=int, default=8765, help="port (default 8765; 0 picks a free one)")
    serve.add_argument("--engine", choices=ENGINES, default="sketch", help="engine (default sketch: CPU, no models)")
    serve.add_argument("--models", type=pathlib.Path, default=None, help="the model registry (models.toml)")
    serve.add_argument("--token", default=None,
                       help="require 'Authorization: Bearer TOKEN' on /v1 (or set $STANDIN_BACKEND_TOKEN)")
    serve.add_argument("--data", type=pathlib.Path, default=None,
                       help="jobs database and files (default $STANDIN_BACKEND_DATA or ~/.local/share/standin-backend)")
    serve.add_argument("--keep-hours", type=float, default=72.0, help="delete finished jobs after this long (72)")
    serve.add_argument("--max-finished", type=int, default=500, help="keep at most this many finished jobs (500)")
    serve.add_argument("--plate-cache-mb", type=int, default=PLATE_CACHE_MB,
                       help=f"diffusers engine: keep at most this many MiB of background plates in <data>/plate-cache, "
                            f"dropping the least recently used ({PLATE_CACHE_MB}; 0 keeps none on disk)")
    serve.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    return parser


def serve(args) -> int:
    token = args.token if args.token is not None else os.environ.get("STANDIN_BACKEND_TOKEN") or None
    if not is_loopback(args.host) and not token:
        raise CliError(
            f"refusing to listen on {args.host} without a token: anyone who can reach this machine could "
            f"run jobs on it. Pass --token (or set STANDIN_BACKEND_TOKEN), or listen on 127.0.0.1.", code=2)
    if not 0 <= args.port < 65536:
        raise CliError(f"--port must be 1–65535 (0: any free port), not {args.port}.", code=2)
    if args.keep_hours < 0 or args.max_finished < 0:
        raise CliError("--keep-hours and --max-finished must not be negative.", code=2)
    if args.plate_cache_mb < 0:
        raise CliError("--plate-cache-mb must not be negative (0 keeps no plates on disk).", code=2)
    data = args.data.expanduser() if args.data is not None else default_data_dir()
    engine_options = {"plate_cache_mb": args.plate_cache_mb} if args.engine == "diffusers" else {}
    engine, registry = load_engine(args.engine, args.models, data, **engine_options)

    import uvicorn

    from .server import create_app

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app(engine, data, token=token, models=registry, keep_hours=args.keep_hours,
                     max_finished=args.max_finished)
    config = uvicorn.Config(app, host=args.host.strip("[]"), port=args.port, log_level=args.log_level,
                            timeout_graceful_shutdown=5, lifespan="on")
    server = uvicorn.Server(config)
    where = f"http://{args.host}:{args.port}/v1" if args.port else f"{args.host}, a free port"
    print(f"standin-backend: {engine.name} engine on {where} "
          f"(data in {data}{', token required' if token else ''})", file=sys.stderr, flush=True)
    server.run()
    return 0 if server.started else 1


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "serve":
            return serve(args)
    except CliError as error:
        print(f"standin-backend: {error}", file=sys.stderr)
        return error.code
    except KeyboardInterrupt:
        return 130
    return 2


if __name__ == "__main__":
    sys.exit(main())
