"""The thank-you page of a survey answer, with an optional comment form, and its "done" page.

Dutch for `nl` contacts, English otherwise (`pages.language`), the shop's
name and colour from trouw.toml. One small template in the shared chrome
(`chrome.py`), like the unsubscribe pages: it loads nothing (no images, fonts
or scripts) and posts only to its own address.
"""

from __future__ import annotations

from trouw.tracking.chrome import DEFAULT_COLOR, render, template

TEXTS = {
    "nl": {
        "title": "Bedankt voor je antwoord",
        "answer": "Je antwoord is genoteerd:",
        "of": "van de {high}",
        "nps": "Hoe waarschijnlijk is het dat je {shop} aanraadt aan vrienden of familie?",
        "csat": "Hoe tevreden ben je over {shop}?",
        "change": "Verkeerd cijfer? Klik in de mail gewoon op een ander, dan telt dat.",
        "label": "Wil je er nog iets over kwijt? Dat mag, het hoeft niet.",
        "button": "Verstuur",
        "done_title": "Dank je wel voor je toelichting",
        "done": "Iedere reactie wordt gelezen door de mensen van {shop}.",
    },
    "en": {
        "title": "Thank you for your answer",
        "answer": "We have noted your answer:",
        "of": "out of {high}",
        "nps": "How likely are you to recommend {shop} to friends or family?",
        "csat": "How satisfied are you with {shop}?",
        "change": "Wrong number? Just click another one in the mail, and that one counts.",
        "label": "Anything you would like to add? Entirely optional.",
        "button": "Send",
        "done_title": "Thank you for your comment",
        "done": "Every comment is read by the people at {shop}.",
    },
}

PAGE = """\
{% extends "chrome.html" %}
{% block style %}
  .answer { display: flex; align-items: center; gap: 1rem; margin: 0 0 1rem; }
  .score { flex-shrink: 0; min-width: 3.2rem; height: 3.2rem; line-height: 3.2rem;
           border-radius: 1.6rem; background: {{ color }}; color: {{ on_color }};
           text-align: center; font-size: 1.5rem; font-weight: bold; padding: 0 .6rem; }
  label { font-size: 1rem; margin: 1.25rem 0 .5rem; }
  textarea { min-height: 7rem; resize: vertical; }
  textarea + button { margin-top: .8rem; }
{% endblock %}
{% block main %}
<section>
{% if score is not none %}
<p class="muted">{{ question }}</p>
<div class="answer">
  <span class="score">{{ score }}</span><span>{{ t.answer }} {{ score }} {{ of }}</span>
</div>
<p class="muted">{{ t.change }}</p>
{% else %}
<p>{{ text }}</p>
{% endif %}
{% if action %}
<form method="post" action="{{ action }}">
  <label for="comment">{{ t.label }}</label>
  <textarea id="comment" name="comment" maxlength="{{ limit }}"></textarea>
  <button type="submit">{{ t.button }}</button>
</form>
{% endif %}
</section>
{% endblock %}
"""

_page = template(PAGE)


def thanks_page(
    language: str,
    shop: str,
    *,
    question: str,
    score: int,
    high: int,
    action: str,
    limit: int,
    color: str = DEFAULT_COLOR,
) -> str:
    """The page after a click on an answer: the score as noted, and a comment form that
    POSTs to `action` (at most `limit` characters)."""
    t = TEXTS[language]
    question = t[question].format(shop=shop)
    return render(
        _page, language, shop, t["title"], color, t=t, question=question, score=score,
        of=t["of"].format(high=high), action=action, limit=limit,
    )  # fmt: skip


def comment_page(language: str, shop: str, *, color: str = DEFAULT_COLOR) -> str:
    """The page after the comment was sent."""
    t = TEXTS[language]
    done = t["done"].format(shop=shop)
    return render(_page, language, shop, t["done_title"], color, t=t, text=done, score=None)
