"""SSE streaming Lambda: Function URL (RESPONSE_STREAM) in a container with a custom runtime.

The handler phase (parse, authorise, take the environment's one stream) is traced by Powertools; the
stream that follows runs after the handler returned and is traced with OTel spans (FR-001).
"""
