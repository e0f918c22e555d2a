"""The HTTP collector: auth, body decoding, validation, durable append, backpressure."""
