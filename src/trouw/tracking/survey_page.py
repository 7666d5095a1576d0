"""The thank-you page of a survey answer, with an optional comment form, and its "done" page.

Dutch for `nl` contacts, English otherwise (`pages.language`), the shop's
name from trouw.toml. One small template kept here, like the unsubscribe
pages: it loads nothing (no images, fonts or scripts) and posts only to its
own address.
"""

from __future__ import annotations

from jinja2 import Environment, select_autoescape

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
<!doctype html>
<html lang="{{ language }}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>{{ title }} · {{ shop }}</title>
<style>
  * { box-sizing: border-box; }
  body { font-family: Arial, Helvetica, sans-serif; color: #222; background: #f4f1ea;
         margin: 0; padding: 3rem 1rem; line-height: 1.5; }
  main { max-width: 34rem; margin: 0 auto; background: #fff; border-radius: 10px;
         padding: 2rem 2rem 1.5rem; box-shadow: 0 1px 4px rgba(0, 0, 0, .08); }
  .shop { margin: 0 0 1.5rem; font-size: .9rem; letter-spacing: .04em; text-transform: uppercase;
          color: #2e6b3a; font-weight: bold; }
  h1 { font-size: 1.6rem; line-height: 1.25; margin: 0 0 1rem; }
  .question { color: #555; margin: 0 0 1rem; }
  .answer { display: flex; align-items: center; gap: 1rem; margin: 0 0 1rem; }
  .answer .score { flex-shrink: 0; }
  .score { display: inline-block; min-width: 3.2rem; height: 3.2rem; line-height: 3.2rem;
           border-radius: 1.6rem; background: #2e6b3a; color: #fff; text-align: center;
           font-size: 1.5rem; font-weight: bold; padding: 0 .6rem; }
  .small { font-size: .9rem; color: #666; }
  label { display: block; font-weight: bold; margin: 1.5rem 0 .5rem; }
  textarea { width: 100%; min-height: 7rem; font: inherit; padding: .6rem; border: 1px solid #bbb;
             border-radius: 6px; resize: vertical; }
  button { margin-top: .8rem; font: inherit; font-weight: bold; padding: .6rem 1.4rem;
           border: 0; border-radius: 6px; background: #2e6b3a; color: #fff; cursor: pointer; }
  button:hover { background: #24552e; }
</style>
</head>
<body>
<main>
<p class="shop">{{ shop }}</p>
<h1>{{ title }}</h1>
{% if score is not none %}
<p class="question">{{ question }}</p>
<div class="answer">
  <span class="score">{{ score }}</span><span>{{ answer }} {{ score }} {{ of }}</span>
</div>
<p class="small">{{ change }}</p>
{% else %}
<p>{{ text }}</p>
{% endif %}
{% if action %}
<form method="post" action="{{ action }}">
  <label for="comment">{{ label }}</label>
  <textarea id="comment" name="comment" maxlength="{{ limit }}"></textarea>
  <button type="submit">{{ button }}</button>
</form>
{% endif %}
</main>
</body>
</html>
"""

# Autoescaped: the shop's name comes from trouw.toml and must not become markup.
_page = Environment(autoescape=select_autoescape(default=True)).from_string(PAGE)


def thanks_page(
    language: str,
    shop: str,
    *,
    question: str,
    score: int,
    high: int,
    action: str,
    limit: int,
) -> str:
    """The page after a click on an answer: the score as noted, and a comment form that
    POSTs to `action` (at most `limit` characters)."""
    texts = TEXTS[language]
    return _page.render(
        language=language,
        shop=shop,
        title=texts["title"],
        question=texts[question].format(shop=shop),
        answer=texts["answer"],
        of=texts["of"].format(high=high),
        change=texts["change"],
        score=score,
        label=texts["label"],
        button=texts["button"],
        action=action,
        limit=limit,
    )


def comment_page(language: str, shop: str) -> str:
    """The page after the comment was sent."""
    texts = TEXTS[language]
    return _page.render(
        language=language,
        shop=shop,
        title=texts["done_title"],
        text=texts["done"].format(shop=shop),
        score=None,
        action=None,
    )
