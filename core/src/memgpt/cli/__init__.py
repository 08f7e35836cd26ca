"""The ``memgpt`` command line (typer). Commands stay thin: parse options, call the library, print."""
