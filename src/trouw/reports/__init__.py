"""`trouw report`: campaign results, inbox pressure and loyalty figures for a year.

figures.py builds the `Report` for a year as of a day from three kinds of
set-based queries (the database counts; Python gets small results):

- funnel.py: per channel (e-mail, letters apart), campaign and variant
  (template) — planned, sent, failed, delivered, opened, clicked,
  unsubscribed, bounced, and the funnel as rates (delivered, open, click,
  click-to-open, unsubscribe, bounce); tracking events are tied to the send
  they belong to, never to a letter.
- flooding.py: mails per contact per ISO week and calendar month from the
  ledger, max / p99 / mean beside the caps in trouw.toml.
- loyalty.py: churn, repurchase and upsell rates, NPS, CSAT and the loyalty
  score (0-10), for the year and for each month; the exact definitions are
  in that module's docstring.

figures.default_period picks the year and as-of day when the command's
options leave them out (the latest sends). export.py turns the report into
JSON and CSV, html.py into one self-contained page (report.html, with
charts.py's inline SVG; a <section> per topic, listed in its nav). Nothing
here writes to the database.
"""

from trouw.reports.export import report_dict, write_csv
from trouw.reports.figures import Report, build_report, check_year
from trouw.reports.html import report_html

__all__ = ["Report", "build_report", "check_year", "report_dict", "report_html", "write_csv"]
