"""`trouw report`: campaign results, inbox pressure and loyalty figures for a year.

figures.py builds the `Report` for a year as of a day from three kinds of
set-based queries (the database counts; Python gets small results):

- funnel.py: per campaign and variant (template) — planned, sent, failed,
  delivered, opened, clicked, unsubscribed, bounced, click-to-open rate;
  tracking events are tied to the send they belong to.
- flooding.py: mails per contact per ISO week and calendar month from the
  ledger, max / p99 / mean beside the caps in trouw.toml.
- loyalty.py: churn, repurchase and upsell rates, NPS, CSAT and the loyalty
  score (0-10), for the year and for each month; the exact definitions are
  in that module's docstring.

export.py turns the report into JSON and CSV, html.py into one
self-contained page (report.html, with charts.py's inline SVG). Nothing here
writes to the database.
"""

from trouw.reports.export import report_dict, write_csv
from trouw.reports.figures import Report, build_report, check_year
from trouw.reports.html import report_html

__all__ = ["Report", "build_report", "check_year", "report_dict", "report_html", "write_csv"]
