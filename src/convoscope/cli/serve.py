"""`serve`: the web app and the HTTP API over the store, on uvicorn (SPEC 6.2, 6.3); and how any command
that serves (`demo` too) finds its port and runs the server."""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from convoscope.cli import running
from convoscope.cli.app import App, fail, pass_app
from convoscope.config import KEYS, Config

LOOPBACK = ("127.0.0.1", "localhost", "::1")


class Port(click.IntRange):
    """`--port`, 1 to 65535, or its environment variable (`envvar=`), which a bad value names as such."""

    def __init__(self) -> None:
        super().__init__(1, 65535)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if ctx is not None and param is not None and param.name is not None and isinstance(param, click.Option) \
                and ctx.get_parameter_source(param.name) == click.core.ParameterSource.ENVIRONMENT:
            check_port_text(str(param.envvar), str(value))
        return super().convert(value, param, ctx)


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=Port(), envvar="CONVOSCOPE_PORT", help="Port (default $CONVOSCOPE_PORT or 8000).")
@click.option("--log-level", type=click.Choice(["warning", "info", "debug"]), default="warning", show_default=True,
              help="What the server says on standard error; debug adds a line per round of its writer (what it "
                   "stored, how long storing and deriving took).")
@pass_app
def serve(app: App, host: str, port: int | None, log_level: str) -> None:
    """Serve the web app and the HTTP API over the store."""
    if log_level != "warning":
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s"))
        logging.getLogger("convoscope").addHandler(handler)
        logging.getLogger("convoscope").setLevel(log_level.upper())
    config = app.config  # a bad configuration fails now, not on the first request
    port = port_or_default(port)
    warning = public_url_warning(config, host, port, app.config_path)
    if warning is not None:
        click.echo(f"convoscope: warning: {warning}", err=True)
    with app.store():
        pass  # creates the store's tables, waiting for another process if it holds the file
    serve_app(app.db_path, app.config_path, host, port, config=config)


def public_url_warning(config: Config, host: str, port: int, config_path: Path | None) -> str | None:
    """What to set when the server listens beyond this machine while Conversation Links would still point at
    127.0.0.1 (`public_url` left at its default, or a brand's set back to it: issue 25 point 6); None when it
    listens on the loopback only, or no link would."""
    default = KEYS["public_url"][0]
    if host.lower() in LOOPBACK:
        return None
    if config.defaults.public_url == default:
        which = "public_url"
    else:
        brands = [name for name, settings in config.brands.items() if settings.public_url == default]
        if not brands:
            return None
        which = "public_url of " + ", ".join(f"[brands.{name}]" for name in brands)
    return (f"serving on {host}, but {which} is still {default}: every Conversation Link in a CSV points at "
            f"127.0.0.1, the reader's own machine; set public_url = \"http://THIS-HOST:{port}\" (the address "
            f"people open) in {config_path or 'convoscope.toml'}")


def port_or_default(port: int | None) -> int:
    """`--port`, else 8000; an empty CONVOSCOPE_PORT, which Click takes for none, is an error too."""
    if port is not None:
        return port
    return check_port_text("CONVOSCOPE_PORT", os.environ.get("CONVOSCOPE_PORT", "8000"))


def check_port_text(variable: str, text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        fail(f"{variable} {text!r} is not a port number; use one such as 8000", 2)
    return int(text)


def check_port(host: str, port: int) -> None:
    """Fail in one line, before anything is done, when the port is taken (a server already running)."""
    import socket

    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            fail(f"cannot listen on {host}:{port} ({exc.strerror}): is convoscope already serving there? "
                 "Stop it, or choose another port with --port or CONVOSCOPE_PORT", 1)


def serve_app(db_path: Path, config_path: Path | None, host: str, port: int, *, config: Config | None = None,
           login: str | None = None, alongside: Callable[[Any], None] | None = None) -> None:
    """Serve the web app until Ctrl-C (or until `alongside`, run in a thread with the uvicorn server once
    the server is up, sets its `should_exit`). While it listens, the file beside the store says where it is, for
    the command line of this machine (`running`, decision 167)."""
    import secrets
    import threading

    import uvicorn

    from convoscope.web.app import create_app

    token = secrets.token_urlsafe(32)
    settled = threading.Event()  # the file is written, or will not be

    def withdraw() -> None:
        settled.wait(timeout=5)  # so that a file written as the server stopped is removed too
        running.withdraw(db_path, token)

    app = create_app(db_path, config_path, config=config, local_token=token, stopping=withdraw)
    check_port(host, port)
    shown = "127.0.0.1" if host in ("127.0.0.1", "0.0.0.0", "::") else host  # as Conversation Links say it
    if port:
        click.echo(f"convoscope is serving {db_path} at http://{shown}:{port}/  (Ctrl-C stops it)")
    if login:
        click.echo(login)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False))

    def when_up() -> None:
        while not server.started and not server.should_exit:
            time.sleep(0.05)
        try:
            if server.started:
                running.announce(db_path, running.Running(local_url(server), os.getpid(), token,
                                                          running.followed_config(config_path)))
        finally:
            settled.set()
        if server.started and alongside is not None:
            alongside(server)

    threading.Thread(target=when_up, name="convoscope-up", daemon=True).start()
    try:
        with contextlib.suppress(KeyboardInterrupt):  # as uvicorn.run: Ctrl-C is how a server is stopped
            server.run()
    finally:
        server.should_exit = True
        withdraw()  # again: a server that failed to start has no lifespan to end
    if not server.started:
        fail(f"the server could not start on {host}:{port}; see the message above", 1)


def local_url(server: Any) -> str:
    """Where this machine reaches a started uvicorn server: the address it listens on, 127.0.0.1 for every
    address (0.0.0.0 or ::), and the port it was given (the real one for port 0)."""
    address = server.servers[0].sockets[0].getsockname()
    host, port = str(address[0]), int(address[1])
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"
