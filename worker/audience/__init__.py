"""The audience itself: its accepted fields and the rule they make."""
