"""Mail templates: the sandboxed Jinja2 environment, personal context, finished mails.

`MailTemplates` compiles a project's templates once per run and renders a
`Mail` (subject, HTML with CSS inlined, text) from a context that
`mail_context` builds from a contact, their `Facts`, the campaign and the shop.
"""

from trouw.templates.context import (
    campaign_view,
    contact_view,
    load_contacts,
    mail_context,
    shop_view,
)
from trouw.templates.environment import Mail, MailTemplates, TemplateError, make_environment
from trouw.templates.links import LinkSigner, SigningKey, signing_key
from trouw.templates.mail import MailFinisher, build_message

__all__ = [
    "LinkSigner",
    "Mail",
    "MailFinisher",
    "MailTemplates",
    "SigningKey",
    "TemplateError",
    "build_message",
    "campaign_view",
    "contact_view",
    "load_contacts",
    "mail_context",
    "make_environment",
    "shop_view",
    "signing_key",
]
