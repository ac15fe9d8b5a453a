"""`leadbridge`: serve, migrate, and manage sites, keys, organisations, scoring and privacy."""

from __future__ import annotations

import typer

from leadbridge.cli import (
    apikeys,
    attribution,
    connections,
    contacts,
    conversions,
    db,
    organisations,
    privacy,
    scoring,
    serve,
    sites,
    sync,
    visitors,
    worker,
)
from leadbridge.redact import install_redaction

app = typer.Typer(help="LeadBridge: website visitors, scores and CRM sync.", no_args_is_help=True,
                  pretty_exceptions_enable=False)


@app.callback()
def _startup() -> None:
    """Credentials never reach a log line, whichever command runs."""
    install_redaction()


app.add_typer(db.app, name="db")
app.add_typer(sites.app, name="sites")
app.add_typer(apikeys.app, name="apikeys")
app.add_typer(organisations.app, name="organisations")
app.add_typer(scoring.app, name="scoring")
app.add_typer(contacts.app, name="contacts")
app.add_typer(connections.app, name="connections")
app.add_typer(connections.secrets_app, name="secrets")
app.add_typer(visitors.app, name="visitors")
app.add_typer(conversions.app, name="conversions")
attribution.register(conversions.app)
app.command("serve")(serve.serve)
app.command("sync")(sync.sync)
app.command("worker")(worker.worker)
app.command("erase")(privacy.erase)
app.command("retention")(privacy.retention)
