"""trouw: a personalised mailing-campaign orchestrator.

Data flows one way: project files + database -> segments -> plan -> render ->
ledger -> send. The command line in `trouw.cli` is a thin layer over this
library.
"""

__version__ = "0.1.0"
