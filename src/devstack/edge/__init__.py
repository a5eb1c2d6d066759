"""The edge in front of the functions: CloudFront (static files, Function URL origin) and API Gateway."""
