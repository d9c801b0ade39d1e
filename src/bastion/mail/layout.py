"""The brand's dress for every email: its name, logo and colour around the message's words, and
a footer naming the support address, in the language the message was written in."""

from __future__ import annotations

from dataclasses import replace

from markupsafe import Markup

from bastion.core.brand import Brand
from bastion.core.i18n import gettext as _
from bastion.core.i18n import speaking
from bastion.core.templating import environment
from bastion.mail.model import EmailMessage


class MailLayout:
    def __init__(self, brand: Brand) -> None:
        self._brand = brand
        self._palette = brand.palette
        self._template = environment("bastion.mail").get_template("email.html")

    def dress(self, message: EmailMessage) -> EmailMessage:
        """The message as it is sent: a complete HTML document, and the text with a footer."""
        if message.locale is None:
            return message
        with speaking(message.locale):
            html = self._template.render(
                brand=self._brand,
                palette=self._palette,
                locale=message.locale,
                subject=message.subject,
                # Written by messages.py, which escapes every paragraph.
                content=Markup(message.html),  # noqa: S704
                action_url=message.action_url,
                action_label=message.action_label,
            )
            text = f"{message.text}\n\n-- \n{self._footer()}"
        return replace(message, html=html, text=text)

    def _footer(self) -> str:
        if self._brand.support_email:
            return _("%(brand)s · Questions? Write to %(address)s") % {
                "brand": self._brand.name,
                "address": self._brand.support_email,
            }
        return self._brand.name
