"""Third-party services the functions call: the Tiingo/Finnhub news APIs and SendGrid."""
