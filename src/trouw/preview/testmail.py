"""A test mail: a campaign's mail as one contact gets it, sent to an address the marketer types.

The mail is rendered from the contact's data on the day it is dated, but goes
to the typed address only: the recipient and the To header are that address,
never the contact's, and an address any contact has is refused (a test must
not become a mail to a customer outside the ledger). The subject starts with
"[test]". Nothing is written to the ledger, and the links in the mail are
signed with a link key no contact has, so the tracking server records no
click, open or unsubscribe for the contact when the tester clicks them (it
answers 404). It leaves over the same SMTP transport as `trouw send --smtp`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from email.utils import parseaddr

from sqlalchemy import Connection, func, select

from trouw.campaigns import Campaign, Step
from trouw.errors import UserError, WorkFailed
from trouw.project import Project
from trouw.sending.ledger import SENT, Send
from trouw.sending.transports import Outgoing, SmtpTransport
from trouw.store import contacts
from trouw.templates.campaign_mails import SYNTHETIC_PREFIX, CampaignMails, RenderedMail
from trouw.templates.links import LinkSigner, MailLinks

SUBJECT_MARK = "[test] "
TEST_LINK_KEY = "trouw-test-mail"  # contacts' link keys are random: none is this
TEST_HEADER = "X-Trouw-Test"


class TestLinkSigner(LinkSigner):
    """Signs every link of a mail with TEST_LINK_KEY: valid tokens that record nothing."""

    __test__ = False  # not a pytest class

    def for_mail(self, contact_id: str, campaign: str, link_key: str | None = None) -> MailLinks:
        return super().for_mail(contact_id, campaign, TEST_LINK_KEY)


@dataclass(frozen=True)
class TestSent:
    """What was sent: to whom, which subject, for which contact, dated which day."""

    __test__ = False

    address: str
    subject: str
    contact_id: str
    template: str
    day: date
    message_id: str


def render_sample(
    mails: CampaignMails,
    campaign: Campaign,
    step: Step,
    contact_id: str,
    template: str | None = None,
) -> RenderedMail | None:
    """The step's mail for a contact, or for a made-up one (`sample-LOCALE`, the variant
    with `template`, else the fallback); None for an unknown contact id."""
    if contact_id.startswith(SYNTHETIC_PREFIX):
        locale = contact_id[len(SYNTHETIC_PREFIX) :] or mails.project.settings.locale
        variant = next((v for v in step.variants if v.segment is None), step.variants[0])
        variant = next((v for v in step.variants if v.template == template), variant)
        return mails.render_synthetic(campaign, step, variant, locale)
    results = mails.render_for(campaign, step, [contact_id])
    return results[0] if results else None


def check_test_address(connection: Connection, address: str, key: str) -> str:
    """The bare address to send a test to, or a UserError: not an address, or a contact's."""
    _name, bare = parseaddr(address.strip())
    local, at, domain = bare.rpartition("@")
    if not at or not local or "." not in domain or any(c in bare for c in "\r\n \t<>"):
        raise UserError(
            f"'{address}' is not an e-mail address",
            key=key,
            fix="type your own address, e.g. marketing@shop.example",
        )
    query = select(contacts.c.id).where(func.lower(contacts.c.email) == bare.lower()).limit(1)
    owner = connection.execute(query).scalar()
    if owner is not None:
        raise UserError(
            f"{bare} is the address of contact {owner}: a test never goes to a contact",
            key=key,
            fix="type an address of your own that no contact has",
        )
    return bare


def send_test_mail(
    project: Project,
    connection: Connection,
    day: date,
    campaign: Campaign,
    step: Step,
    contact_id: str,
    address: str,
    smtp_url: str,
    *,
    template: str | None = None,
    key: str = "--send-test",
) -> TestSent:
    """Render the step's mail for the contact as of `day` and send it to `address` only."""
    bare = check_test_address(connection, address, key)
    mails = CampaignMails(project, connection, day)
    mails.signer = TestLinkSigner(project.settings.tracking_base_url, mails.signing_key.secret)
    result = render_sample(mails, campaign, step, contact_id, template)
    if result is None:
        raise UserError(f"no contact with id '{contact_id}'", key="--contact")
    if result.error is not None:
        raise result.error
    if result.mail is None:
        why = "; ".join(result.notes) or "nothing to render"
        raise UserError(f"no mail for {contact_id} from {campaign.name}: {why}", key="--contact")
    subject = SUBJECT_MARK + result.mail.subject
    test = replace(
        result,
        contact={**result.contact, "email": bare, "full_name": ""},
        mail=replace(result.mail, subject=subject),
    )
    message = mails.message(test, headers={TEST_HEADER: f"for {contact_id}, dated {day}"})
    sender = parseaddr(project.settings.sender.from_address)[1]
    send = Send(contact_id, campaign.name, step.name, "test", day, result.mail.template, "email")
    transport = SmtpTransport(smtp_url)
    try:
        outcome = transport.deliver(Outgoing(send, message, sender, bare, "test"))
    finally:
        transport.close()
    if outcome.status != SENT:
        raise WorkFailed(f"the SMTP server did not take the test mail: {outcome.error}")
    return TestSent(
        bare, subject, contact_id, result.mail.template, day, str(message.get("Message-ID"))
    )
