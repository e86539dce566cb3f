"""The dispatch service: e-mails each document of a mailing to its recipient and records every outcome."""
