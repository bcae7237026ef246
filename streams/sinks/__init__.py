"""Alert delivery: consumers of the alerts topic that send to Alertmanager and webhooks."""
