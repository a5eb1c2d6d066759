"""AWS itself, locally: moto on loopback, the stack's resources, SNS delivery and the fault gate."""
