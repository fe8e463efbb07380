"""chat-admin: the operator's CLI (commands arrive in their own modules)."""
import click


@click.group()
def cli():
    """Operate a chatd database, also while chatd runs."""


def main():
    cli()
