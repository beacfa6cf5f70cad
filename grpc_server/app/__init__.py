"""The application layer: AvatarForge's use cases in plain Python, no gRPC and no protobuf.

`Application` (application.py) owns create (idempotent, in the job pool), get, list, delete, render,
stream sessions and exports (to a directory or as chunks), with the renderer cache (renderers.py),
the job pool (jobs.py) and the render slots (rendering.py). `grpc_server.service` translates
messages to these calls; the CLI's local mode calls them directly. Import from the modules (this
package's own import stays light, so the error lookup can use `errors` without loading models).
"""
