"""News pages for the end-to-end tests, written for them (fictional reporting about real public figures)."""

from __future__ import annotations

HEAD = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<meta property="og:site_name" content="The Daily Ledger">
<meta name="author" content="{author}">
<meta property="article:published_time" content="{published}T09:00:00Z">
<style>body {{ font-family: Georgia, serif; max-width: 42rem; margin: 2rem auto; }}</style>
</head>
<body>
<nav><a href="/">Home</a> · <a href="/tech">Technology</a> · <a href="/markets">Markets</a> · <a href="/opinion">Opinion</a></nav>
"""

FOOT = """
<footer><p>© The Daily Ledger. Contact the newsroom at tips@ledger.invalid.</p></footer>
</body>
</html>
"""

# The headline, the <title> and one paragraph exist only after this script runs in the browser:
# a server that fetched the raw HTML itself could not show them.
ALTMAN_SCRIPT_TITLE = "Sam Altman weighs open models as Meta's Llama gains ground"

ALTMAN_OPEN_MODELS = HEAD.format(title="Loading…", author="Priya Raman", published="2026-03-14") + """
<article>
<h1 id="headline">Loading…</h1>
<p class="byline">By Priya Raman, technology correspondent</p>
<div id="story">
<p>OpenAI chief executive Sam Altman told employees in San Francisco on Thursday that the company is
weighing whether to release more of its models with open weights, a shift that would bring it closer to
the approach championed by its rival Meta.</p>
<p>The discussion comes as Meta's Llama family of open models has been adopted by thousands of start-ups,
universities and government agencies, many of which say they prefer to run artificial intelligence
systems on their own servers rather than send data to a cloud provider.</p>
<p>Sam Altman said OpenAI would not abandon its paid products, but acknowledged that developers had made
their preference for open models clear. Researchers at the company have argued internally that releasing
smaller models could help OpenAI win back developers who moved to Llama over the past year.</p>
<p>Meta chief executive Mark Zuckerberg has said repeatedly that open models are safer because more
people can inspect them, and that an open ecosystem prevents any single company from controlling the
technology. Critics counter that openly released weights cannot be recalled once they are misused.</p>
<p>Investors are watching the debate closely. Analysts in New York said an open release from OpenAI would
put pressure on the prices that cloud companies charge for access to large language models, and could
reshape the competition between OpenAI, Meta and Google over the next two years.</p>
</div>
</article>
<script>
  document.title = "Sam Altman weighs open models as Meta's Llama gains ground";
  document.getElementById("headline").textContent = document.title;
  const extra = document.createElement("p");
  extra.textContent = "Microsoft chief executive Satya Nadella, whose company is OpenAI's largest investor, " +
    "said in a statement that Microsoft supports giving customers a choice between open and closed models.";
  document.getElementById("story").appendChild(extra);
</script>
""" + FOOT

LLAMA_PRESSURE = HEAD.format(
    title="Meta's open Llama push puts pressure on OpenAI", author="Tomás Ferreira", published="2026-03-20"
) + """
<article>
<h1>Meta's open Llama push puts pressure on OpenAI</h1>
<p class="byline">By Tomás Ferreira</p>
<p>Meta released a new version of its Llama open models on Tuesday, adding to the pressure on OpenAI and
its chief executive Sam Altman, who has been weighing whether to publish open weights of his own.</p>
<p>Mark Zuckerberg said at an event in Menlo Park that open models had become the standard for companies
that want to run artificial intelligence on their own servers, and that Meta would keep releasing them
for free to developers and researchers.</p>
<p>OpenAI has kept its most capable models closed and sells access through a paid interface. People
familiar with the matter said Sam Altman had asked engineers to prepare a smaller open model that could be
released within months, in part to win back developers who switched to Llama.</p>
<p>Developers welcomed the competition. Several start-ups said open models let them keep customer data on
their own machines, while others warned that the cost of running large models on local hardware remains
high for small teams and universities.</p>
<p>Analysts said the rivalry between Meta and OpenAI over open models is likely to shape prices for
language models across the industry, and that Google and Microsoft would have to respond as well.</p>
</article>
""" + FOOT

# Sam Altman appears in the menu (not part of the story) and once split across a <b> element in the story:
# highlighting must mark the story's three mentions, not the menu's. The 𝕏 before them is outside the
# Basic Multilingual Plane: the server counts it as one character, JavaScript as two.
HIGHLIGHT_STORY = HEAD.format(
    title="Sam Altman sets out OpenAI's plan for smaller models", author="Priya Raman", published="2026-03-22"
).replace("<a href=\"/opinion\">Opinion</a>", "<a href=\"/opinion\">Opinion</a> · <a href=\"/p\">Sam Altman profile</a>") + """
<article>
<h1>Sam Altman sets out OpenAI's plan for smaller models</h1>
<p>In a post on 𝕏 on Monday, OpenAI chief executive Sam Altman said that the company would release a family of smaller
models that businesses can run on their own computers, a plan that puts it in direct competition with
the open models published by Meta.</p>
<p>Speaking at a developer conference in San Francisco, <b>Sam</b> Altman said the smaller models would
be cheaper to operate and would let hospitals, banks and schools keep sensitive records on their own
hardware instead of sending them to a data centre.</p>
<p>Engineers at OpenAI have spent months compressing larger systems so they fit on a single graphics
card, and the first smaller model is due in June. Analysts said the move was a response to Meta, whose Llama models are popular with start-ups, and
that pricing for the new models would matter more than their test scores.</p>
<p>Asked whether OpenAI would publish the full weights, Sam Altman said the company would decide model by
model, after safety testing, and that some versions would remain available only through its paid service.</p>
</article>
""" + FOOT

NOT_AN_ARTICLE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in</title></head>
<body><form><label>Email <input name="email"></label> <button>Sign in</button></form></body></html>
"""
