"""The local preview web page (`trouw preview --serve`): campaigns, variants, rendered mails."""
