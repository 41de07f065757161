"""convoscope: Conversations, AI Sessions and team Contacts from a support operation's event log."""

__version__ = "0.1.0"
