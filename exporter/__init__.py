"""smtp-reply-exporter: counts SMTP reply codes and enhanced status codes in mail logs."""

__version__ = "0.1.0"
