"""The tracking server behind `trouw serve`: clicks, opens and unsubscribes from sent mails.

`app` is the WSGI app (HTTP only: clicks and opens in plain WSGI, the rest in
Flask), `record` writes the events (no HTTP), `pages` holds the unsubscribe
pages, and `wsgi` is the entry point for production servers:
`gunicorn trouw.tracking.wsgi:app`.
"""

from trouw.tracking.app import create_app

__all__ = ["create_app"]
