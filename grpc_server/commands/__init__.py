"""CLI subcommands: every module here defines `register(subparsers)`, which adds one subparser and sets
`func(args) -> int` on it with `set_defaults`; `grpc_server.cli.COMMANDS` lists them. A command raises
on failure (with a sentence); the CLI prints it and exits 1. Commands that work on avatars take the
location arguments of `_common.add_location_args` and go through a `_backend.Backend`."""
