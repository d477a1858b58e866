"""Calendar domain: events with correct time zones, recurring series, free/busy and slot finding."""
