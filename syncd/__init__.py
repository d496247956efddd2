"""syncd: keeps support desks (Zendesk, Intercom) and Jira in sync, both ways."""

__version__ = "0.1.0"
