"""Redis: the recipient sets the campaign stack reads, built aside and switched atomically."""
