"""`leadbridge contacts token EMAIL`: signed tokens for links in marketing emails."""

from __future__ import annotations

import typer

from leadbridge.cli.common import friendly_errors, settings
from leadbridge.hubsecret import hub_secret
from leadbridge.identify.contacts import make_contact_token

app = typer.Typer(help="Contacts.", no_args_is_help=True)


@app.command("token")
@friendly_errors
def token(email: str) -> None:
    """Print the `lb_ct` token to add to links sent to EMAIL (`?lb_ct=<token>`)."""
    print(make_contact_token(hub_secret(settings()), email))
