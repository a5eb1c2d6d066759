"""X-Ray locally: the UDP daemon, the OTLP receiver (the ADOT collector), the segment sink, trace reading."""
