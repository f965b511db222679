/* Backstory panel: the related stories, as two views of the server's list (kept in its ranking order
 * there): "Same story elsewhere" (each related story whose relation is same_event, its sources side by
 * side) and "Backstory" (the others, a timeline oldest first). Uses $(), el(), formatDate(), hostOf(),
 * safeHttpUrl() and joinParts() of panel.js, which calls renderRelated(). */
"use strict";

/** The date a related story is placed by: its published date, else when the archive first saw it. */
function storyDate(story) {
  return story.published || story.first_seen || "";
}

/** Both sections from the related list; in the timeline, stories without any date come last. */
function renderRelated(related, settings) {
  const same = related.filter((story) => story.relation === "same_event");
  const background = related.filter((story) => story.relation !== "same_event");
  const timeline = background
    .map((story, rank) => ({ story, rank, key: storyDate(story) }))
    .sort((a, b) => (!a.key) - (!b.key) || a.key.localeCompare(b.key) || a.rank - b.rank)
    .map((entry) => entry.story);
  $("related-pending").replaceChildren();  // the streamed panel's placeholders
  $("related-pending").hidden = true;
  $("same-event").replaceChildren(...same.map(sourceItem));
  $("backstory").replaceChildren(...timeline.map(timelineItem));
  $("same-event-section").hidden = !same.length;
  $("backstory-section").hidden = !timeline.length;
  $("related-empty").hidden = related.length > 0;
  $("related-empty").textContent = settings.archive
    ? "Nothing related yet — stories you read are kept for next time."
    : "Nothing related yet. Switch on “Keep stories I read” in Options so later stories can be related.";
}

function relatedLink(story) {
  const href = safeHttpUrl(story.url);
  const title = story.title || story.url;
  return href
    ? el("a", { href, target: "_blank", rel: "noopener noreferrer", className: "related-title", text: title })
    : el("span", { className: "related-title", text: title });
}

function reasonLine(story) {
  const reasons = [...(story.shared_entities || []), ...(story.shared_keyphrases || [])]
    .filter((v, i, all) => all.indexOf(v) === i)
    .slice(0, 6);
  return reasons.length ? el("p", { className: "why", text: "shares: " + reasons.join(", ") }) : null;
}

/** One source of the same event: the site first (what differs between the cards), then the headline. */
function sourceItem(story) {
  return el("li", { className: "source", dataset: { storyId: story.story_id } }, [
    el("p", { className: "source-site", text: story.site_name || hostOf(story.url) || "unknown source" }),
    relatedLink(story),
    el("p", { className: "meta", text: formatDate(story.published) }),
    reasonLine(story),
  ]);
}

/** One step of the backstory: its date (or when it was first seen), the headline, the source, the reason. */
function timelineItem(story) {
  const when = story.published ? formatDate(story.published)
    : story.first_seen ? "first seen " + formatDate(story.first_seen) : "undated";
  return el("li", { className: "step", dataset: { storyId: story.story_id, date: storyDate(story) } }, [
    el("p", { className: "step-date", text: when }),
    relatedLink(story),
    el("p", { className: "meta", text: story.site_name || hostOf(story.url) }),
    reasonLine(story),
  ]);
}
