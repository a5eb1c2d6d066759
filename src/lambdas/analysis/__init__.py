"""The analysis Lambda (SNS `news_items`): VADER score, `analyzed` status, time-series fan-out."""
