"""scheduler: campaigns that send a mailing at a date and time."""
