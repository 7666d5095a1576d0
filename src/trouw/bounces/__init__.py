"""Bounces and complaints from the bounce mailbox: read (mailboxes), understood (parse),
applied to contacts, events and suppressions (apply). `trouw bounces fetch` runs all three."""
