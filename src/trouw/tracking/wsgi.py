"""The tracking app for production WSGI servers: `gunicorn trouw.tracking.wsgi:app`.

Configured by the environment (see `app_from_environment`): TROUW_SECRET, and
TROUW_PROJECT and TROUW_DATABASE_URL where the working directory does not say.
Each worker process imports this module and so gets its own engine.
"""

from trouw.tracking.app import app_from_environment

app = app_from_environment()
