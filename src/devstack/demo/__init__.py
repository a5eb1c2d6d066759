"""`python -m devstack demo`: a scripted scenario on the running stack, checked against its traces."""
