"""Every tracing decision of the project lives in this package.

- `powertools`: Tracer + Logger for the five batch Lambdas, the silent-failure helper (X-Ray SDK).
- `otel`: the SSE Lambda's streaming-phase OpenTelemetry provider (OTLP to the ADOT collector).
- `bounds`: FR-058 limits; `annotations`: X-Ray annotation rules; `header`: the trace header.

Import the submodule you need; `otel` is imported only by the SSE Lambda (its dependencies are
not in the batch Lambdas' packages).
"""
