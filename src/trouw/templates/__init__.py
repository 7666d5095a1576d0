"""Mail templates: the sandboxed Jinja2 environment, personal context, finished mails.

`MailTemplates` compiles a project's templates once per run and renders a
`Mail` (subject, HTML with CSS inlined, text) from a context that
`mail_context` builds from a contact, their `Facts`, the campaign and the shop.

The link signing names (links.py, which reads keys from the database) are
loaded when first asked for, so compiling templates (`trouw check`) does not
import SQLAlchemy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from trouw.templates.context import (
    campaign_view,
    contact_view,
    load_contacts,
    mail_context,
    shop_view,
)
from trouw.templates.environment import Mail, MailTemplates, TemplateError, make_environment
from trouw.templates.mail import MailFinisher, build_message

if TYPE_CHECKING:
    from trouw.templates.links import LinkSigner, SigningKey, signing_key

_LAZY = ("LinkSigner", "SigningKey", "signing_key")


def __getattr__(name: str) -> object:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from trouw.templates import links

    value = getattr(links, name)
    globals()[name] = value
    return value


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
