"""The `coffer` subcommands, one module per group; `agent.cli` parses and dispatches."""
