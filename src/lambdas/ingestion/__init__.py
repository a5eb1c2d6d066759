"""The ingestion Lambda (EventBridge schedule): news sources → `news` table → analysis SNS topic."""
