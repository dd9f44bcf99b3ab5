"""What the tests and the benchmarks run Tidings with: one launcher each for a server process,
redis-server and the store; a pool of shared servers and a three-node cluster; the webhook
receiver and moto's SQS; one raw Engine.IO client; set-up writes straight into the store.

Modules: `common` (ports, waits, the app's key and tokens), `redis`, `store`, `server`,
`pool`, `cluster`, `webhooks`, `sqs`, `engineio`, `follows`.
"""
