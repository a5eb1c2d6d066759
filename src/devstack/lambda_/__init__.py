"""The Lambda service: invocations, the Runtime API endpoint, runtime processes, events, schedules."""
