"""CLI subcommands: every module here defines `register(subparsers)`, which adds one subparser and sets
`func(args) -> int` on it with `set_defaults`. `grpc_server.cli` discovers them; nothing else lists them."""
