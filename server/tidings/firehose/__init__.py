"""The firehose: every feed update that goes to sockets also goes, at least once, to the app's
own webhooks and SQS queues. outbox.py writes the messages (the store's
`deliveries`), worker.py leases and sends them, webhook.py and sqs.py are the senders."""
