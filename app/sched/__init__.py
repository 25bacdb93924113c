"""The embedded scheduler: real-time, batched and monthly jobs per workspace (APScheduler 3.x)."""
