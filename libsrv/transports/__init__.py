"""The catalog over other transports than ZeroMQ, for comparing them (`serve --transport grpc`,
`--transport http`): the same `Service`, rules and storage as the ZeroMQ server, behind a gRPC
service (`grpc_server`, its contract in `library.proto`) or an HTTP/JSON one (`http_server`),
each run by `pool` as one or N processes on one port. Needs the `transports` extra
(``pip install ".[transports]"``); docs/transports.md says what each costs."""
