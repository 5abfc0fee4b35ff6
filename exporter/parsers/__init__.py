"""One pure line parser per MTA: a log line in, reply events out, no I/O."""
