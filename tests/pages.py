"""News pages and texts written for the tests (never taken from the evaluation sets)."""

from __future__ import annotations

from html import escape

AI_TITLE = "Altman weighs giving away OpenAI's models as Meta releases open Llama models"
AI_PARAGRAPHS = [
    "SAN FRANCISCO — Sam Altman, the chief executive of OpenAI, told employees on Tuesday that the "
    "company is weighing whether to release the weights of some of its language models for free, "
    "a reversal that would have been unthinkable a year ago.",
    "The debate inside OpenAI comes as Meta, its largest rival in the race to build open models, "
    "released a new family of Llama models that anyone can download, modify and run on their own "
    "computers. Mark Zuckerberg, Meta's chief executive, said open models would become the industry "
    "standard, much as Linux did for servers.",
    "Altman said the company had underestimated how quickly developers would adopt open models. "
    "Several large customers, including banks in London and hospitals in Boston, have asked OpenAI "
    "for models they can run inside their own data centers for reasons of privacy and cost.",
    "Giving the models away carries risks. Researchers at OpenAI have warned that open weights "
    "cannot be recalled once they are published, and that safety guardrails can be removed by "
    "anyone who fine-tunes the model. Investors, including Microsoft, have poured billions of "
    "dollars into the company on the expectation that its models would remain a paid product.",
    "People familiar with the discussions said OpenAI was leaning toward releasing a smaller open "
    "model while keeping its most capable systems behind its paid interface. A decision is "
    "expected before the end of the quarter, Altman told staff.",
    "Analysts said the move would put pressure on Google and on Anthropic, which have so far kept "
    "their most capable models closed. The open model market has grown quickly this year, with "
    "Mistral in Paris and several Chinese laboratories releasing open models of their own.",
]

CHIP_TITLE = "Meta's open Llama release puts pressure on OpenAI"
CHIP_PARAGRAPHS = [
    "MENLO PARK, Calif. — Meta on Tuesday released its largest open Llama model yet, and Mark "
    "Zuckerberg said the company would keep giving its models away for free to developers.",
    "The release increases pressure on OpenAI, whose chief executive Sam Altman has said the company "
    "is weighing whether to publish open weights of its own language models for the first time.",
    "Developers can download the Llama models and run them on their own computers, Meta said, and "
    "banks and hospitals have started testing open models inside their own data centers.",
    "Zuckerberg compared open models to Linux and said closed systems from OpenAI and Google would "
    "lose ground as open models improve.",
]

SPORT_TITLE = "Late goal sends Rotterdam side into the cup final"
SPORT_PARAGRAPHS = [
    "Feyenoord reached the Dutch cup final on Wednesday after a late header from its captain beat "
    "Ajax 2-1 in front of a sold-out crowd in Rotterdam.",
    "The Amsterdam club had led for most of the second half, but the home side pressed until the "
    "final minutes and scored twice from corners.",
    "The final will be played next month in Utrecht against PSV Eindhoven.",
]


def news_page(
    title: str,
    paragraphs: list[str],
    *,
    byline: str = "Jane Reporter",
    date: str = "2026-11-17",
    site: str = "The Daily Ledger",
    canonical: str | None = None,
    script_paragraph: str | None = None,
) -> str:
    """A realistic article page: navigation, a byline, the story, a newsletter box, a footer."""
    body = "\n".join(f"      <p>{escape(p)}</p>" for p in paragraphs)
    canonical_tag = f'<link rel="canonical" href="{escape(canonical)}">' if canonical else ""
    script = ""
    if script_paragraph:
        script = (
            "<script>document.addEventListener('DOMContentLoaded',function(){var p=document.createElement('p');"
            f"p.textContent={script_paragraph!r};document.querySelector('article').appendChild(p);}});</script>"
        )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>{escape(title)} | {escape(site)}</title>
  <meta property="og:title" content="{escape(title)}">
  <meta property="og:site_name" content="{escape(site)}">
  <meta name="author" content="{escape(byline)}">
  <meta property="article:published_time" content="{date}T08:30:00Z">
  {canonical_tag}
  {script}
</head>
<body>
  <header><nav><a href="/">Home</a> <a href="/tech">Technology</a> <a href="/world">World</a>
    <a href="/subscribe">Subscribe</a></nav></header>
  <main>
    <article>
      <h1>{escape(title)}</h1>
      <p class="byline">By {escape(byline)}</p>
      <time datetime="{date}">{date}</time>
{body}
    </article>
    <aside class="newsletter"><h3>Get the morning briefing</h3><p>Sign up for our newsletter.</p></aside>
  </main>
  <footer><p>Copyright 2026 {escape(site)}. All rights reserved.</p>
    <a href="/privacy">Privacy</a> <a href="/terms">Terms</a></footer>
</body>
</html>"""


# Two events of the same kind (a wildfire): three stories on event A, two on event B.
FIRE_A = [
    ("Wildfire forces evacuation of Paradise Valley",
     "A wildfire driven by strong winds forced the evacuation of Paradise Valley, Arizona, on Monday. "
     "Governor Katie Hobbs declared a state of emergency as the Cactus Ridge fire burned more than "
     "4,000 acres north of Phoenix. Fire chief Daniel Ortega said crews were protecting homes along "
     "Cave Creek Road."),
    ("Cactus Ridge fire grows as Hobbs seeks federal aid",
     "The Cactus Ridge fire near Paradise Valley grew to 9,000 acres on Tuesday, and Governor Katie Hobbs "
     "asked the federal government for help. Fire chief Daniel Ortega said the blaze was ten percent "
     "contained and that evacuation orders along Cave Creek Road remain in place north of Phoenix."),
    ("Residents return to Paradise Valley after Cactus Ridge blaze",
     "Residents of Paradise Valley began returning home on Friday after crews contained the Cactus Ridge "
     "fire north of Phoenix. Daniel Ortega, the fire chief, thanked firefighters, and Katie Hobbs toured "
     "the burned hillsides along Cave Creek Road with local officials."),
]
FIRE_B = [
    ("Wildfire near Boulder destroys dozens of homes",
     "A fast-moving wildfire in Boulder County, Colorado, destroyed dozens of homes on Sunday. Governor "
     "Jared Polis said the Marshall Mesa fire spread quickly across dry grassland near Superior and "
     "Louisville. Sheriff Joe Pelle urged residents to leave immediately."),
    ("Polis visits Superior as Marshall Mesa fire is contained",
     "Governor Jared Polis visited Superior on Wednesday as firefighters contained the Marshall Mesa fire "
     "in Boulder County. Sheriff Joe Pelle said investigators were still looking for the cause of the "
     "blaze that burned homes in Superior and Louisville."),
]
