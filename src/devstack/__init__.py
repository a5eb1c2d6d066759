"""The local stack: moto for AWS, a local X-Ray daemon and OTLP receiver, Lambda emulation, a gateway.

Run `python -m devstack --help` (or `make demo` / `make up`).
"""
