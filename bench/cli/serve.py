"""`bench serve api` and `bench serve ui`: run bench's services (the database is migrated first)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from bench.cli.common import err, open_registry, user_errors


serve_app = typer.Typer(no_args_is_help=True, help="Run bench's services.")


# -- serving ---------------------------------------------------------------------------------------------
@serve_app.command("api")
def serve_api(host: str = typer.Option("127.0.0.1", "--host"), port: int = typer.Option(8000, "--port"),
              workers: int = typer.Option(1, "--workers", help="uvicorn worker processes"),
              forwarded_allow_ips: str = typer.Option(
                  "127.0.0.1", "--forwarded-allow-ips",
                  help="reverse proxies whose X-Forwarded-For is trusted as the client address (rate limits "
                       "count per address); comma-separated, '*' for any")) -> None:
    """Serve the REST API (/api/v1, schema at /api/v1/openapi.json), migrating the database first."""
    import uvicorn

    with user_errors():
        registry = open_registry()  # migrates, and reports bad settings as one line before uvicorn starts
        registry.close()
        uvicorn.run("bench.web.api.app:create_app", factory=True, host=host, port=port, workers=workers,
                    log_level="info", timeout_graceful_shutdown=10, proxy_headers=True,
                    forwarded_allow_ips=forwarded_allow_ips)


@serve_app.command("ui")
def serve_ui(api: Optional[str] = typer.Option(None, "--api", help="the API to show (default: $BENCH_SERVER, "
                                                                 "else http://127.0.0.1:8000)"),
             public_api: Optional[str] = typer.Option(None, "--public-api", help="the API's address as browsers reach "
                                                      "it, for downloads and frames (default: --api)"),
             host: str = typer.Option("127.0.0.1", "--host"), port: int = typer.Option(8501, "--port")) -> None:
    """Serve the web UI (Streamlit); it reads everything from the API over HTTP."""
    import os
    import sys

    from bench.platform.settings import Settings

    with user_errors():
        url = api or Settings.load().server or "http://127.0.0.1:8000"
        app_file = Path(__file__).resolve().parents[1] / "web" / "ui" / "app.py"
        env = {**os.environ, "BENCH_SERVER": url}
        if public_api:
            env["BENCH_PUBLIC_API_URL"] = public_api
        command = [sys.executable, "-m", "streamlit", "run", str(app_file), "--server.address", host,
                   "--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false",
                   "--server.fileWatcherType", "none", "--theme.base", "light",
                   "--client.toolbarMode", "viewer"]
        err.print(f"bench UI on http://{host}:{port} (API {url})", markup=False, highlight=False)
        # Become Streamlit rather than wait for it: a SIGTERM to this process (a test's teardown,
        # systemd, docker stop) must reach the server, not orphan it.
        sys.stderr.flush()
        os.execve(sys.executable, command, env)
