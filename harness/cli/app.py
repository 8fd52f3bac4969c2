"""``harness app``: start the Streamlit app on 127.0.0.1.

Mount on the main CLI with ``app.command("app")(app_command)``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import typer

#: the Streamlit entry point at the repository root
APP_FILE = Path(__file__).resolve().parents[2] / "app.py"


def streamlit_command(
    results: Path, port: int = 8501, address: str = "127.0.0.1", app_file: Path = APP_FILE
) -> list[str]:
    """The command line that serves ``app_file`` for ``results`` on ``address:port`` (headless,
    no usage statistics)."""
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(app_file),
        "--server.address",
        address,
        "--server.port",
        str(port),
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        "--",
        "--results",
        str(results),
    ]


def app_command(
    results: Path = typer.Option(
        Path("results"), "--results", "-o", envvar="HARNESS_RESULTS", help="results directory the app reads and writes"
    ),
    port: int = typer.Option(8501, "--port", help="port on 127.0.0.1"),
) -> None:
    """Start the Streamlit app (runs, compare, recommend, regressions, upload) on 127.0.0.1."""
    if not APP_FILE.exists():
        typer.echo(f"error: {APP_FILE} not found; run from a source checkout of the project", err=True)
        raise typer.Exit(2)
    typer.echo(f"serving {results} on http://127.0.0.1:{port} (Ctrl-C to stop)")
    try:
        code = subprocess.call(streamlit_command(results, port))
    except KeyboardInterrupt:
        code = 0
    raise typer.Exit(code)


#: standalone app for tests; the main CLI mounts the command itself
app = typer.Typer(add_completion=False, no_args_is_help=True)
app.command("app")(app_command)


@app.callback()
def _root() -> None:
    """Streamlit app."""
